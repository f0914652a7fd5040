package dynamostandin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Operation names (the part of X-Amz-Target after "DynamoDB_20120810.") the stand-in answers itself.
const (
	OpBatchWriteItem = "BatchWriteItem"
	OpPutItem        = "PutItem"
	OpGetItem        = "GetItem"
)

const targetPrefix = "DynamoDB_20120810."

// maxBody bounds a request body (BatchWriteItem allows 16 MB).
const maxBody = 17 << 20

// Options configures a Server. The zero value answers BatchWriteItem, PutItem and GetItem itself, stores every item
// and injects no fault.
type Options struct {
	// Upstream is the base URL of a DynamoDB-compatible server (for example dynalite's endpoint) that every request
	// is forwarded to. Default: - none; the Server answers BatchWriteItem, PutItem and GetItem itself and rejects
	// other operations with UnknownOperationException.
	Upstream string
	// KeyAttributes maps a table name to its key attribute names, partition key first, for the items the Server
	// stores itself. Default: - every table is keyed by "id".
	KeyAttributes map[string][]string
	// Discard makes the Server accept writes without storing or checking them (for benchmarks, so the stand-in's
	// CPU does not weigh on the client measured): it only checks that a BatchWriteItem holds 1 to 25 write requests,
	// and counts them. Default: - false, items are checked as DynamoDB would, stored, and returned by Items.
	Discard bool

	// Seed seeds the random source of fault decisions and latency. Default: - 0, itself a fixed seed.
	Seed uint64
	// Latency delays every response by this much. Default: - no delay.
	Latency time.Duration
	// LatencyJitter adds a uniformly random delay in [0, LatencyJitter) to Latency. Default: - none.
	LatencyJitter time.Duration
	// DropRate is the probability in [0, 1] that a request's connection is reset without a response.
	// Default: - 0.
	DropRate float64
	// DropAfterApply makes a dropped request take effect (stored or forwarded) before its connection is reset, as
	// when a response is lost on the way back. Default: - false, a dropped request has no effect.
	DropAfterApply bool
	// ThrottleRate is the probability in [0, 1] that a request is answered with
	// ProvisionedThroughputExceededException (HTTP 400) and has no effect. Default: - 0.
	ThrottleRate float64
	// ValidationRate is the probability in [0, 1] that a request is answered with a ValidationException (HTTP 400)
	// and has no effect. Default: - 0.
	ValidationRate float64
	// UnprocessedRate is the probability in [0, 1] that a BatchWriteItem request applies only part of its items and
	// returns the rest in UnprocessedItems. Default: - 0.
	UnprocessedRate float64
	// UnprocessedFraction is the fraction in (0, 1] of such a request's write requests that are returned
	// unprocessed, rounded up, at least one, chosen at random. Default: - 0.5.
	UnprocessedFraction float64
	// FaultOperations limits latency and faults to these operations (for example OpBatchWriteItem). Default: - all
	// operations.
	FaultOperations []string
}

// Stats counts what a Server has seen and done.
type Stats struct {
	// Requests is the number of requests received.
	Requests int64
	// Operations counts requests per operation name.
	Operations map[string]int64
	// Throttled counts requests answered with ProvisionedThroughputExceededException by injection.
	Throttled int64
	// ValidationErrors counts requests answered with ValidationException, injected or because the request broke
	// DynamoDB's rules (checked only when the Server answers itself).
	ValidationErrors int64
	// Dropped counts requests whose connection was reset.
	Dropped int64
	// PartialBatches counts BatchWriteItem requests that were given injected UnprocessedItems.
	PartialBatches int64
	// UnprocessedItems counts write requests returned unprocessed by injection.
	UnprocessedItems int64
	// ItemsWritten counts write requests applied: stored by the Server, or forwarded and not returned unprocessed
	// by the upstream.
	ItemsWritten int64
	// Forwarded counts requests sent to the upstream.
	Forwarded int64
	// ConditionalCheckFailures counts PutItem requests answered with ConditionalCheckFailedException (answered by
	// the Server itself).
	ConditionalCheckFailures int64
}

// Server is a running DynamoDB stand-in. Its methods are safe for concurrent use.
type Server struct {
	opts     Options
	url      string
	srv      *http.Server
	upstream *url.URL
	client   *http.Client
	faultOps map[string]bool

	mu    sync.Mutex // guards rng, items and stats
	rng   *rand.Rand
	items map[string]map[string]Item
	stats Stats
}

// New starts a Server on a free port of 127.0.0.1. Like httptest.NewServer it panics if it cannot listen, and it
// panics on invalid options (a rate outside [0, 1], an unparsable Upstream). Call Close when done.
func New(opts Options) *Server {
	if err := opts.validate(); err != nil {
		panic("dynamostandin: " + err.Error())
	}
	if opts.UnprocessedFraction == 0 {
		opts.UnprocessedFraction = 0.5
	}
	s := &Server{
		opts:  opts,
		rng:   rand.New(rand.NewPCG(opts.Seed, 0x9e3779b97f4a7c15)),
		items: map[string]map[string]Item{},
		stats: Stats{Operations: map[string]int64{}},
	}
	if opts.Upstream != "" {
		s.upstream, _ = url.Parse(strings.TrimRight(opts.Upstream, "/"))
		s.client = &http.Client{Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: 64,
			DisableCompression:  true,
		}}
	}
	if len(opts.FaultOperations) > 0 {
		s.faultOps = map[string]bool{}
		for _, op := range opts.FaultOperations {
			s.faultOps[op] = true
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("dynamostandin: listen: %v", err))
	}
	s.url = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s
}

func (o Options) validate() error {
	var errs []error
	for _, r := range []struct {
		name string
		v    float64
	}{
		{"DropRate", o.DropRate}, {"ThrottleRate", o.ThrottleRate}, {"ValidationRate", o.ValidationRate},
		{"UnprocessedRate", o.UnprocessedRate}, {"UnprocessedFraction", o.UnprocessedFraction},
	} {
		if math.IsNaN(r.v) || r.v < 0 || r.v > 1 {
			errs = append(errs, fmt.Errorf("%s %v is outside [0, 1]", r.name, r.v))
		}
	}
	if o.Latency < 0 || o.LatencyJitter < 0 {
		errs = append(errs, errors.New("Latency and LatencyJitter must not be negative"))
	}
	if o.Upstream != "" {
		u, err := url.Parse(o.Upstream)
		if err != nil {
			errs = append(errs, fmt.Errorf("Upstream: %w", err))
		} else if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf("Upstream %q is not an http(s) URL", o.Upstream))
		}
	}
	return errors.Join(errs...)
}

// URL returns the Server's base URL, "http://127.0.0.1:<port>": the SDK client's BaseEndpoint.
func (s *Server) URL() string { return s.url }

// Close stops the Server and closes its connections.
func (s *Server) Close() {
	_ = s.srv.Close()
	if s.client != nil {
		s.client.CloseIdleConnections()
	}
}

// Stats returns a snapshot of the Server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Operations = make(map[string]int64, len(s.stats.Operations))
	for k, v := range s.stats.Operations {
		st.Operations[k] = v
	}
	return st
}

// Items returns a copy of the items the Server stored for table, keyed by KeyString of their key attributes (for
// the default key, the value of "id"). It is empty when the Server forwards requests or discards items.
func (s *Server) Items(table string) map[string]Item {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Item, len(s.items[table]))
	for k, it := range s.items[table] {
		out[k] = it
	}
	return out
}

// keyAttributes returns the key attribute names of table.
func (s *Server) keyAttributes(table string) []string {
	if k, ok := s.opts.KeyAttributes[table]; ok && len(k) > 0 {
		return k
	}
	return []string{"id"}
}

type fault int

const (
	faultNone fault = iota
	faultDrop
	faultThrottle
	faultValidation
)

// decision is what happens to one request. Every request draws the same number of random values, so the decisions
// depend only on the seed and the order in which requests arrive.
type decision struct {
	delay    time.Duration
	fault    fault
	partial  bool
	pickSeed uint64
}

func (s *Server) decide(op string) decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Requests++
	s.stats.Operations[op]++
	uJitter, uDrop, uThrottle, uValidation, uPartial := s.rng.Float64(), s.rng.Float64(), s.rng.Float64(), s.rng.Float64(), s.rng.Float64()
	pickSeed := s.rng.Uint64()
	if s.faultOps != nil && !s.faultOps[op] {
		return decision{}
	}
	d := decision{delay: s.opts.Latency + time.Duration(uJitter*float64(s.opts.LatencyJitter)), pickSeed: pickSeed}
	switch {
	case uDrop < s.opts.DropRate:
		d.fault = faultDrop
	case uThrottle < s.opts.ThrottleRate:
		d.fault = faultThrottle
	case uValidation < s.opts.ValidationRate:
		d.fault = faultValidation
	case op == OpBatchWriteItem && uPartial < s.opts.UnprocessedRate:
		d.partial = true
	}
	return d
}

func (s *Server) count(f func(st *Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// response is what the Server sends back.
type response struct {
	status int
	header http.Header
	body   []byte
}

func errorResponse(e *apiError) response {
	return response{status: e.status, body: e.body()}
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return // the client went away
	}
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	if !ok || r.Method != http.MethodPost {
		s.write(w, errorResponse(&apiError{status: 400, typ: typeUnknownOp, message: "missing or unknown X-Amz-Target"}))
		return
	}
	d := s.decide(op)
	if d.delay > 0 {
		t := time.NewTimer(d.delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	switch {
	case d.fault == faultDrop && !s.opts.DropAfterApply:
		s.drop(w)
		return
	case d.fault == faultThrottle:
		s.count(func(st *Stats) { st.Throttled++ })
		s.write(w, errorResponse(&apiError{status: 400, typ: typeThrottled,
			message: "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."}))
		return
	case d.fault == faultValidation:
		s.count(func(st *Stats) { st.ValidationErrors++ })
		s.write(w, errorResponse(validationError("injected validation error")))
		return
	}
	var resp response
	if s.upstream != nil {
		resp = s.forward(r.Context(), r, op, body, d)
	} else {
		resp = s.answer(op, body, d)
	}
	if d.fault == faultDrop {
		s.drop(w)
		return
	}
	s.write(w, resp)
}

// drop resets the request's connection without a response.
func (s *Server) drop(w http.ResponseWriter) {
	s.count(func(st *Stats) { st.Dropped++ })
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("dynamostandin: response writer cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close with RST: the client sees "connection reset by peer"
	}
	_ = conn.Close()
}

func (s *Server) write(w http.ResponseWriter, resp response) {
	h := w.Header()
	for k, vs := range resp.header {
		h[k] = vs
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/x-amz-json-1.0")
	}
	if resp.status >= 400 {
		var e struct {
			Type string `json:"__type"`
		}
		if json.Unmarshal(resp.body, &e) == nil && e.Type != "" && h.Get("X-Amzn-ErrorType") == "" {
			h.Set("X-Amzn-ErrorType", e.Type[strings.LastIndex(e.Type, "#")+1:])
		}
	}
	if h.Get("X-Amzn-RequestId") == "" {
		h.Set("X-Amzn-RequestId", "standin-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	}
	h.Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(resp.body)), 10))
	h.Set("Content-Length", strconv.Itoa(len(resp.body)))
	w.WriteHeader(resp.status)
	_, _ = w.Write(resp.body)
}

// entry is one write request of a BatchWriteItem, with its table.
type entry struct {
	table string
	raw   json.RawMessage
}

// flatten lists a BatchWriteItem's write requests, tables in name order.
func flatten(items map[string][]json.RawMessage) []entry {
	var all []entry
	for _, table := range sortedTables(items) {
		for _, raw := range items[table] {
			all = append(all, entry{table, raw})
		}
	}
	return all
}

// withhold picks the write requests, among n, that a partial response returns unprocessed (all false unless
// d.partial), and counts them.
func (s *Server) withhold(n int, d decision) []bool {
	held := make([]bool, n)
	if !d.partial || n == 0 {
		return held
	}
	k := int(math.Ceil(s.opts.UnprocessedFraction * float64(n)))
	k = max(1, min(k, n))
	for _, i := range rand.New(rand.NewPCG(d.pickSeed, 1)).Perm(n)[:k] {
		held[i] = true
	}
	s.count(func(st *Stats) {
		st.PartialBatches++
		st.UnprocessedItems += int64(k)
	})
	return held
}

// answer handles a request without an upstream.
func (s *Server) answer(op string, body []byte, d decision) response {
	var err *apiError
	out := []byte("{}")
	switch op {
	case OpBatchWriteItem:
		out, err = s.answerBatch(body, d)
	case OpPutItem:
		err = s.answerPut(body)
	case OpGetItem:
		out, err = s.answerGet(body)
	default:
		err = &apiError{status: 400, typ: typeUnknownOp, message: "the stand-in answers only BatchWriteItem, PutItem and GetItem itself; set Upstream for " + op}
	}
	if err != nil {
		if err.typ == typeValidation {
			s.count(func(st *Stats) { st.ValidationErrors++ })
		}
		return errorResponse(err)
	}
	return response{status: 200, body: out}
}

// pendingPut is a validated write request: an item to store, or a key to delete (item nil).
type pendingPut struct {
	table string
	key   string
	item  Item
}

func (s *Server) answerBatch(body []byte, d decision) ([]byte, *apiError) {
	// Validate the whole request first: DynamoDB rejects it before applying anything.
	var in batchWriteInput
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, &apiError{status: 400, typ: typeSerializing, message: err.Error()}
	}
	all := flatten(in.RequestItems)
	if len(all) < 1 || len(all) > 25 {
		return nil, validationError("1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Member must have length less than or equal to 25 and greater than or equal to 1 (got %d write requests)", len(all))
	}
	puts := make([]pendingPut, len(all))
	seen := make(map[[2]string]bool, len(all))
	for i, e := range all {
		if s.opts.Discard {
			break // counted only: the stand-in's CPU must not weigh on a benchmark
		}
		p, err := s.decodeWrite(e.table, e.raw)
		if err != nil {
			return nil, err
		}
		if seen[[2]string{p.table, p.key}] {
			return nil, validationError("Provided list of item keys contains duplicates")
		}
		seen[[2]string{p.table, p.key}] = true
		puts[i] = p
	}
	withheld := s.withhold(len(all), d)
	held := map[string][]json.RawMessage{}
	kept := puts[:0:0]
	for i, e := range all {
		if withheld[i] {
			held[e.table] = append(held[e.table], e.raw)
		} else {
			kept = append(kept, puts[i])
		}
	}
	s.apply(kept)
	out, err := json.Marshal(batchWriteOutput{UnprocessedItems: held})
	if err != nil {
		return nil, &apiError{status: 500, typ: "InternalServerError", message: err.Error()}
	}
	return out, nil
}

func (s *Server) decodeWrite(table string, raw json.RawMessage) (pendingPut, *apiError) {
	var wr writeRequest
	if err := json.Unmarshal(raw, &wr); err != nil {
		return pendingPut{}, &apiError{status: 400, typ: typeSerializing, message: err.Error()}
	}
	switch {
	case wr.PutRequest != nil && wr.DeleteRequest == nil:
		return s.decodePut(table, wr.PutRequest.Item)
	case wr.DeleteRequest != nil && wr.PutRequest == nil:
		key, _, err := decodeItem(wr.DeleteRequest.Key)
		if err != nil {
			return pendingPut{}, validationError("%v", err)
		}
		ks, err := KeyString(key, s.keyAttributes(table))
		if err != nil {
			return pendingPut{}, validationError("%v", err)
		}
		return pendingPut{table: table, key: ks}, nil
	default:
		return pendingPut{}, validationError("a write request must hold exactly one of PutRequest and DeleteRequest")
	}
}

func (s *Server) decodePut(table string, w wireItem) (pendingPut, *apiError) {
	if table == "" {
		return pendingPut{}, validationError("1 validation error detected: Value null at 'tableName' failed to satisfy constraint: Member must not be null")
	}
	it, size, err := decodeItem(w)
	if err != nil {
		return pendingPut{}, validationError("%v", err)
	}
	if size > maxItemSize {
		return pendingPut{}, validationError("Item size has exceeded the maximum allowed size")
	}
	key, err := KeyString(it, s.keyAttributes(table))
	if err != nil {
		return pendingPut{}, validationError("%v", err)
	}
	return pendingPut{table: table, key: key, item: it}, nil
}

func (s *Server) answerPut(body []byte) *apiError {
	var in putItemInput
	if err := json.Unmarshal(body, &in); err != nil {
		return &apiError{status: 400, typ: typeSerializing, message: err.Error()}
	}
	if s.opts.Discard {
		s.apply([]pendingPut{{}})
		return nil
	}
	p, err := s.decodePut(in.TableName, in.Item)
	if err != nil {
		return err
	}
	if in.ConditionExpression == "" {
		if len(in.ExpressionAttributeNames)+len(in.ExpressionAttributeValues) > 0 {
			return validationError("ExpressionAttributeNames and ExpressionAttributeValues can only be specified when using expressions")
		}
		s.apply([]pendingPut{p})
		return nil
	}
	values, _, derr := decodeItem(in.ExpressionAttributeValues)
	if derr != nil {
		return validationError("ExpressionAttributeValues contains invalid value: %v", derr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ok, cerr := evalCondition(in.ConditionExpression, in.ExpressionAttributeNames, values, s.items[p.table][p.key])
	if cerr != nil {
		s.stats.ValidationErrors++
		return validationError("Invalid ConditionExpression: %v", cerr)
	}
	if !ok {
		s.stats.ConditionalCheckFailures++
		return &apiError{status: 400, typ: typeConditionFailed, message: "The conditional request failed"}
	}
	s.applyLocked([]pendingPut{p})
	return nil
}

// answerGet reads one item, projected on the attributes of ProjectionExpression (names or #placeholders, comma
// separated) when it is set.
func (s *Server) answerGet(body []byte) ([]byte, *apiError) {
	var in getItemInput
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, &apiError{status: 400, typ: typeSerializing, message: err.Error()}
	}
	key, _, err := decodeItem(in.Key)
	if err != nil {
		return nil, validationError("%v", err)
	}
	if len(key) != len(s.keyAttributes(in.TableName)) {
		return nil, validationError("The provided key element does not match the schema")
	}
	ks, err := KeyString(key, s.keyAttributes(in.TableName))
	if err != nil {
		return nil, validationError("%v", err)
	}
	s.mu.Lock()
	it, found := s.items[in.TableName][ks]
	s.mu.Unlock()
	var out getItemOutput
	if found {
		out.Item = encodeItem(it)
		if in.ProjectionExpression != "" {
			proj := wireItem{}
			for _, name := range strings.Split(in.ProjectionExpression, ",") {
				name = strings.TrimSpace(name)
				if strings.HasPrefix(name, "#") {
					real, ok := in.ExpressionAttributeNames[name]
					if !ok {
						return nil, validationError("Invalid ProjectionExpression: An expression attribute name used in the document path is not defined; attribute name: %s", name)
					}
					name = real
				}
				if v, ok := out.Item[name]; ok {
					proj[name] = v
				}
			}
			out.Item = proj
		}
	}
	b, merr := json.Marshal(out)
	if merr != nil {
		return nil, &apiError{status: 500, typ: "InternalServerError", message: merr.Error()}
	}
	return b, nil
}

func (s *Server) apply(puts []pendingPut) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyLocked(puts)
}

// applyLocked is apply with s.mu held.
func (s *Server) applyLocked(puts []pendingPut) {
	s.stats.ItemsWritten += int64(len(puts))
	if s.opts.Discard {
		return
	}
	for _, p := range puts {
		t := s.items[p.table]
		if t == nil {
			t = map[string]Item{}
			s.items[p.table] = t
		}
		if p.item == nil {
			delete(t, p.key)
		} else {
			t[p.key] = p.item
		}
	}
}

// isHopHeader reports whether a header is not copied between the client, the stand-in and the upstream: hop-by-hop
// headers, and those the stand-in recomputes.
func isHopHeader(k string) bool {
	switch http.CanonicalHeaderKey(k) {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te", "Trailer",
		"Content-Length", "X-Amz-Crc32", "Host":
		return true
	}
	return false
}

// forward sends the request to the upstream, withholding write requests first if d.partial, and merges the
// withheld ones into the upstream's UnprocessedItems.
func (s *Server) forward(ctx context.Context, r *http.Request, op string, body []byte, d decision) response {
	var held map[string][]json.RawMessage
	if op == OpBatchWriteItem && d.partial {
		var fields map[string]json.RawMessage
		var in batchWriteInput
		if err := json.Unmarshal(body, &fields); err != nil {
			return errorResponse(&apiError{status: 400, typ: typeSerializing, message: err.Error()})
		}
		if err := json.Unmarshal(body, &in); err != nil {
			return errorResponse(&apiError{status: 400, typ: typeSerializing, message: err.Error()})
		}
		all := flatten(in.RequestItems)
		withheld := s.withhold(len(all), d)
		kept := map[string][]json.RawMessage{}
		held = map[string][]json.RawMessage{}
		for i, e := range all {
			if withheld[i] {
				held[e.table] = append(held[e.table], e.raw)
			} else {
				kept[e.table] = append(kept[e.table], e.raw)
			}
		}
		if len(kept) == 0 {
			out, _ := json.Marshal(batchWriteOutput{UnprocessedItems: held})
			return response{status: 200, body: out}
		}
		fields["RequestItems"], _ = json.Marshal(kept)
		body, _ = json.Marshal(fields)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.upstream.String()+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return errorResponse(&apiError{status: 500, typ: "InternalServerError", message: fmt.Sprintf("build upstream request: %v", err)})
	}
	for k, vs := range r.Header {
		if !isHopHeader(k) {
			req.Header[k] = vs
		}
	}
	s.count(func(st *Stats) { st.Forwarded++ })
	res, err := s.client.Do(req)
	if err != nil {
		return errorResponse(&apiError{status: 500, typ: "InternalServerError", message: fmt.Sprintf("forward to upstream: %v", err)})
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		return errorResponse(&apiError{status: 500, typ: "InternalServerError", message: fmt.Sprintf("read upstream response: %v", err)})
	}
	header := http.Header{}
	for k, vs := range res.Header {
		if !isHopHeader(k) {
			header[k] = vs
		}
	}
	if res.StatusCode == 200 {
		out = s.afterForward(op, body, out, held)
	}
	return response{status: res.StatusCode, header: header, body: out}
}

// afterForward counts the write requests the upstream applied and merges held into its UnprocessedItems.
func (s *Server) afterForward(op string, sent, out []byte, held map[string][]json.RawMessage) []byte {
	switch op {
	case OpPutItem:
		s.count(func(st *Stats) { st.ItemsWritten++ })
	case OpBatchWriteItem:
		var in batchWriteInput
		var res map[string]json.RawMessage
		if json.Unmarshal(sent, &in) != nil || json.Unmarshal(out, &res) != nil {
			return out
		}
		var up batchWriteOutput
		if raw, ok := res["UnprocessedItems"]; ok {
			_ = json.Unmarshal(raw, &up.UnprocessedItems)
		}
		applied := 0
		for t, reqs := range in.RequestItems {
			applied += len(reqs) - len(up.UnprocessedItems[t])
		}
		s.count(func(st *Stats) { st.ItemsWritten += int64(applied) })
		if len(held) == 0 {
			return out
		}
		if up.UnprocessedItems == nil {
			up.UnprocessedItems = map[string][]json.RawMessage{}
		}
		for t, reqs := range held {
			up.UnprocessedItems[t] = append(up.UnprocessedItems[t], reqs...)
		}
		res["UnprocessedItems"], _ = json.Marshal(up.UnprocessedItems)
		merged, err := json.Marshal(res)
		if err != nil {
			return out
		}
		return merged
	}
	return out
}
