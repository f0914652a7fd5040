package selftest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// Kinesis is the part of the Kinesis API the self-test uses. *kinesis.Client satisfies it.
type Kinesis interface {
	PutRecord(ctx context.Context, in *kinesis.PutRecordInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error)
}

// DB is the part of the DynamoDB API the self-test uses: reads and deletes by key, nothing else. *dynamodb.Client
// satisfies it.
type DB interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

// Mappings reads the event source mapping's state for the evidence of a failure. *lambda.Client satisfies it.
type Mappings interface {
	GetEventSourceMapping(ctx context.Context, in *lambda.GetEventSourceMappingInput, optFns ...func(*lambda.Options)) (*lambda.GetEventSourceMappingOutput, error)
}

var (
	_ Kinesis  = (*kinesis.Client)(nil)
	_ DB       = (*dynamodb.Client)(nil)
	_ Mappings = (*lambda.Client)(nil)
)

// Defaults of Options.
const (
	DefaultTimeout        = 5 * time.Minute
	DefaultPollInterval   = time.Second
	DefaultCleanupTimeout = 20 * time.Second
)

// MarkerField is the payload field of a derived canary holding the run's nonce.
const MarkerField = "kdpSelfTest"

// Options configure a run. Run sets the defaults, applies the caller's functions, then checks the result.
type Options struct {
	// StreamName is the stream's name (kinesalite needs it). StreamName or StreamARN is required.
	StreamName string
	// StreamARN is the stream's ARN; PutRecord names the stream by it when set.
	StreamARN string
	// TableName is the data table's name. Required.
	TableName string
	// ErrorTableName is the error table's name; empty when the pipeline has none (no malformed canary then).
	ErrorTableName string
	// Config is the canary's configuration: the pipeline's key schema, the user's record and key, the malformed
	// canary. Default: the zero Config (the default processor configuration, a derived canary, no malformed one).
	Config Config
	// Timeout bounds the wait for the canaries. Default: DefaultTimeout.
	Timeout time.Duration
	// PollInterval is the time between two reads of the tables. Default: DefaultPollInterval.
	PollInterval time.Duration
	// CleanupTimeout bounds the deletes of the canary items, after Timeout. Default: DefaultCleanupTimeout.
	CleanupTimeout time.Duration
	// Mappings reads the event source mapping's state for a failure's evidence, when MappingUUID is set too.
	// Default: - none.
	Mappings Mappings
	// MappingUUID is the event source mapping's UUID. Default: - none.
	MappingUUID string
	// Logger receives one line per step. Default: slog.Default().
	Logger *slog.Logger
	// Nonce returns the run's nonce. Default: 16 random hex digits.
	Nonce func() (string, error)
}

// Put is one canary record as the stream stored it.
type Put struct {
	PartitionKey   string `json:"partitionKey"`
	ShardID        string `json:"shardId"`
	SequenceNumber string `json:"sequenceNumber"`
	// EventID is "shardId:sequenceNumber", the record's event id, which the processor uses as the default item key
	// and as the error-table entry's id.
	EventID string `json:"eventId"`
}

// Report is what a run did.
type Report struct {
	Nonce string `json:"nonce"`
	// Canary is the well-formed canary; Key its item's key (attribute name to a printable value).
	Canary Put               `json:"canary"`
	Key    map[string]string `json:"key"`
	// ItemAfter is how long after PutRecord its item was seen in the table.
	ItemAfter time.Duration `json:"itemAfterNs"`
	// Malformed is the malformed canary, nil when none was put; MalformedAfter how long it took to reach the error table.
	Malformed      *Put          `json:"malformed,omitempty"`
	MalformedAfter time.Duration `json:"malformedAfterNs,omitempty"`
	// Deleted lists the items deleted ("table: key"); Left the canary items that could not be deleted, and why.
	Deleted []string `json:"deleted,omitempty"`
	Left    []string `json:"left,omitempty"`
}

// Run runs the self-test once. It returns the report and nil when the canary's item reached the table (and the
// malformed canary the error table) and every canary item was deleted; otherwise the report so far and a *Failure.
// The canary items are deleted (conditionally, see the package documentation) whether the run passes or fails.
func Run(ctx context.Context, kc Kinesis, db DB, optFns ...func(*Options)) (*Report, error) {
	o := Options{Timeout: DefaultTimeout, PollInterval: DefaultPollInterval, CleanupTimeout: DefaultCleanupTimeout, Nonce: randomNonce}
	for _, fn := range optFns {
		if fn != nil {
			fn(&o)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Nonce == nil {
		o.Nonce = randomNonce
	}
	var errs []error
	if kc == nil {
		errs = append(errs, errors.New("kinesis client is nil"))
	}
	if db == nil {
		errs = append(errs, errors.New("db is nil"))
	}
	if o.StreamName == "" && o.StreamARN == "" {
		errs = append(errs, errors.New("stream name and ARN are empty"))
	}
	if o.TableName == "" {
		errs = append(errs, errors.New("table name is empty"))
	}
	if o.Timeout <= 0 || o.PollInterval <= 0 || o.CleanupTimeout <= 0 {
		errs = append(errs, errors.New("timeout, poll interval and cleanup timeout must be positive"))
	}
	if err := o.Config.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.Config.Malformed && o.ErrorTableName == "" {
		errs = append(errs, errors.New("malformed canary: the pipeline has no error table"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, &Failure{Step: StepSetup, Cause: CauseInvalidConfiguration, Err: err}
	}
	nonce, err := o.Nonce()
	if err != nil {
		return nil, &Failure{Step: StepSetup, Cause: CauseInvalidConfiguration, Err: fmt.Errorf("nonce: %w", err)}
	}
	r := &run{o: o, kc: kc, db: db, report: &Report{Nonce: nonce}}
	return r.report, r.run(ctx)
}

func randomNonce() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

type run struct {
	o      Options
	kc     Kinesis
	db     DB
	report *Report

	key      processor.Item // the canary item's key
	position []byte         // the canary record's processor.AttrPosition
	// keyNamesCanary: the item's partition key is the canary's event id, so only the canary record writes it and
	// the processor may leave out processor.AttrPosition (the key names the position; see the processor's doc).
	keyNamesCanary bool
	malformed      *Put
}

func (r *run) run(ctx context.Context) (err error) {
	nonce := r.report.Nonce
	payload, err := r.o.Config.payload(nonce)
	if err != nil {
		return &Failure{Step: StepSetup, Cause: CauseInvalidConfiguration, Err: err}
	}
	wctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	defer func() {
		// Delete what this run wrote, pass or fail, with a budget of its own (the wait may have used up wctx).
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.CleanupTimeout)
		defer ccancel()
		if cerr := r.cleanup(cctx); cerr != nil && err == nil {
			err = cerr
		}
	}()

	canary, err := r.put(wctx, processor.SelfTestPartitionKeyPrefix+nonce, payload)
	if err != nil {
		return &Failure{Step: StepPutCanary, Cause: CausePutFailed, Err: err}
	}
	r.report.Canary = *canary
	putAt := time.Now()
	if r.key, err = r.o.Config.itemKey(*canary, payload); err != nil {
		return &Failure{Step: StepPutCanary, Cause: CauseInvalidConfiguration, Err: err}
	}
	r.report.Key = printableKey(r.key)
	r.keyNamesCanary = r.o.Config.partitionKeyIs(r.key, canary.EventID)
	if r.position, err = processor.EncodePosition(canary.ShardID, canary.SequenceNumber, 0); err != nil {
		return &Failure{Step: StepPutCanary, Cause: CausePutFailed, Err: fmt.Errorf("the stream returned an unusable position: %w", err)}
	}
	var malformedAt time.Time
	if r.o.Config.Malformed {
		// Put at once: the pipeline processes both while the self-test waits for the first.
		m, err := r.put(wctx, processor.SelfTestPartitionKeyPrefix+nonce+"-malformed", malformedPayload(nonce))
		if err != nil {
			return &Failure{Step: StepPutMalformed, Cause: CausePutFailed, Err: err}
		}
		r.malformed, r.report.Malformed, malformedAt = m, m, time.Now()
	}
	r.o.Logger.Info("self-test canary put", "eventId", canary.EventID, "malformed", r.malformed != nil)

	if err := r.waitItem(wctx, putAt); err != nil {
		var f *Failure
		if r.malformed != nil && errors.As(err, &f) && f.Cause == CauseCanaryRejected {
			// The pipeline works, the canary does not pass: still wait (within the timeout) for the malformed
			// canary, so the cleanup finds and deletes its error entry instead of leaving it behind.
			if merr := r.waitMalformed(wctx, malformedAt); merr != nil {
				f.Evidence = append(f.Evidence, "and the malformed canary: "+merr.Error())
			}
		}
		return err
	}
	if r.malformed != nil {
		if err := r.waitMalformed(wctx, malformedAt); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) put(ctx context.Context, partitionKey string, data []byte) (*Put, error) {
	in := &kinesis.PutRecordInput{PartitionKey: aws.String(partitionKey), Data: data}
	if r.o.StreamARN != "" {
		in.StreamARN = aws.String(r.o.StreamARN)
	} else {
		in.StreamName = aws.String(r.o.StreamName)
	}
	out, err := r.kc.PutRecord(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("put record: %w", err)
	}
	p := &Put{PartitionKey: partitionKey, ShardID: aws.ToString(out.ShardId), SequenceNumber: aws.ToString(out.SequenceNumber)}
	if p.ShardID == "" || p.SequenceNumber == "" {
		return nil, errors.New("put record: the stream returned no shard id or sequence number")
	}
	p.EventID = p.ShardID + ":" + p.SequenceNumber
	return p, nil
}

// waitItem polls the table for the canary's item and the error table for the canary itself (rejected by the
// transform or by DynamoDB's rules), until one shows up or ctx ends.
func (r *run) waitItem(ctx context.Context, since time.Time) error {
	var ev evidence
	for {
		item, err := r.get(ctx, r.o.TableName, r.key)
		switch {
		case err != nil:
			ev.readError(r.o.TableName, err)
		case item != nil && r.canaryItem(item):
			r.report.ItemAfter = time.Since(since)
			r.o.Logger.Info("self-test canary item written", "afterMs", r.report.ItemAfter.Milliseconds())
			return nil
		case item != nil:
			ev.once("the table holds an item under the canary's key written by another record (its " +
				processor.AttrPosition + ", or its " + MarkerField + " marker, differs): waiting for the canary's own")
		}
		if r.o.ErrorTableName != "" {
			entry, err := r.errorEntry(ctx, &r.report.Canary)
			switch {
			case err != nil:
				ev.readError(r.o.ErrorTableName, err)
			case entry != nil:
				return &Failure{Step: StepWaitItem, Cause: CauseCanaryRejected, Waited: time.Since(since),
					Evidence: append(ev.list, fmt.Sprintf("error table %s holds the canary (id %q) with reason: %s",
						r.o.ErrorTableName, r.report.Canary.EventID, stringAttr(entry[processor.ErrorAttrReason])))}
			}
		}
		if !sleep(ctx, r.o.PollInterval) {
			return r.timeout(ctx, StepWaitItem, CauseItemNotWritten, since, ev,
				fmt.Sprintf("no item with key %s written by the canary (event id %s) in table %s", formatKey(r.report.Key),
					r.report.Canary.EventID, r.o.TableName))
		}
	}
}

// waitMalformed polls the error table for the malformed canary's entry.
func (r *run) waitMalformed(ctx context.Context, since time.Time) error {
	var ev evidence
	for {
		entry, err := r.errorEntry(ctx, r.malformed)
		switch {
		case err != nil:
			ev.readError(r.o.ErrorTableName, err)
		case entry != nil:
			r.report.MalformedAfter = time.Since(since)
			r.o.Logger.Info("self-test malformed canary in the error table", "afterMs", r.report.MalformedAfter.Milliseconds())
			return nil
		}
		if !sleep(ctx, r.o.PollInterval) {
			return r.timeout(ctx, StepWaitMalformed, CauseMalformedNotInErrorTable, since, ev,
				fmt.Sprintf("no entry %q in error table %s", r.malformed.EventID, r.o.ErrorTableName))
		}
	}
}

// errorEntry returns the error-table entry of canary p, or nil when there is none (yet). An entry under p's event
// id that another record wrote (it cannot happen: event ids are unique) does not count.
func (r *run) errorEntry(ctx context.Context, p *Put) (processor.Item, error) {
	item, err := r.get(ctx, r.o.ErrorTableName, errorKey(p))
	if err != nil || item == nil {
		return nil, err
	}
	if stringAttr(item[processor.ErrorAttrShardID]) != p.ShardID || stringAttr(item[processor.ErrorAttrSequenceNumber]) != p.SequenceNumber {
		return nil, nil
	}
	return item, nil
}

func (r *run) get(ctx context.Context, table string, key processor.Item) (processor.Item, error) {
	out, err := r.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("get item: %w", err)
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return out.Item, nil
}

// timeout builds the failure of a wait that ran out of time, with the mapping's state as evidence.
func (r *run) timeout(ctx context.Context, step Step, cause Cause, since time.Time, ev evidence, what string) error {
	list := append([]string{what}, ev.list...)
	if r.o.Mappings != nil && r.o.MappingUUID != "" {
		// ctx has run out: the evidence gets a few seconds of its own.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		list = append(list, mappingEvidence(ctx, r.o.Mappings, r.o.MappingUUID))
	}
	return &Failure{Step: step, Cause: cause, Waited: time.Since(since), Evidence: list}
}

// mappingEvidence describes the event source mapping's state, or why it could not be read.
func mappingEvidence(ctx context.Context, m Mappings, uuid string) string {
	out, err := m.GetEventSourceMapping(ctx, &lambda.GetEventSourceMappingInput{UUID: aws.String(uuid)})
	if err != nil {
		return fmt.Sprintf("event source mapping %s: not readable: %v", uuid, err)
	}
	s := fmt.Sprintf("event source mapping %s: state %s", uuid, aws.ToString(out.State))
	if reason := aws.ToString(out.StateTransitionReason); reason != "" {
		s += fmt.Sprintf(" (%s)", reason)
	}
	if last := aws.ToString(out.LastProcessingResult); last != "" {
		s += ", last processing result: " + last
	}
	if out.StartingPosition != "" {
		s += ", starting position " + string(out.StartingPosition)
	}
	return s
}

// cleanup deletes the canary items this run may have caused, each on a condition only that item meets: the data
// item, the canary's error entry (when the transform rejected it) and the malformed canary's entry.
func (r *run) cleanup(ctx context.Context) error {
	type del struct {
		table string
		key   processor.Item
		cond  string
		names map[string]string
		vals  map[string]types.AttributeValue
	}
	var dels []del
	if r.key != nil {
		cond := "#p = :p"
		names := map[string]string{"#p": processor.AttrPosition}
		vals := map[string]types.AttributeValue{":p": &types.AttributeValueMemberB{Value: r.position}}
		switch {
		case r.keyNamesCanary && r.o.Config.markerKept():
			// Not the key alone: a PutRecord answer naming a position already used (a broken or forged answer) must
			// not make a real record's item look like the canary's.
			cond += " OR attribute_not_exists(#p) AND #m = :m"
			names["#m"] = MarkerField
			vals[":m"] = &types.AttributeValueMemberS{Value: r.report.Nonce}
		case r.keyNamesCanary:
			cond += " OR attribute_not_exists(#p)"
		}
		dels = append(dels, del{r.o.TableName, r.key, cond, names, vals})
	}
	errorDel := func(p *Put) del {
		return del{r.o.ErrorTableName, errorKey(p), "#s = :s AND #q = :q",
			map[string]string{"#s": processor.ErrorAttrShardID, "#q": processor.ErrorAttrSequenceNumber},
			map[string]types.AttributeValue{":s": &types.AttributeValueMemberS{Value: p.ShardID}, ":q": &types.AttributeValueMemberS{Value: p.SequenceNumber}}}
	}
	if r.o.ErrorTableName != "" && r.report.Canary.EventID != "" {
		dels = append(dels, errorDel(&r.report.Canary))
	}
	if r.malformed != nil {
		dels = append(dels, errorDel(r.malformed))
	}
	var failed []string
	for _, d := range dels {
		what := d.table + ": " + formatKey(printableKey(d.key))
		out, err := r.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName: aws.String(d.table), Key: d.key, ConditionExpression: aws.String(d.cond),
			ExpressionAttributeNames: d.names, ExpressionAttributeValues: d.vals, ReturnValues: types.ReturnValueAllOld,
		})
		var ccf *types.ConditionalCheckFailedException
		switch {
		case errors.As(err, &ccf): // no such canary item (never written, or not the canary's): nothing to delete
		case err != nil:
			r.report.Left = append(r.report.Left, what+": "+err.Error())
			failed = append(failed, fmt.Sprintf("delete %s: %v", what, err))
		case len(out.Attributes) > 0:
			r.report.Deleted = append(r.report.Deleted, what)
		}
	}
	if len(failed) > 0 {
		return &Failure{Step: StepCleanup, Cause: CauseCleanupFailed, Evidence: failed}
	}
	return nil
}

// canaryItem says whether item, read under the canary's key, is the canary's own: its position attribute names the
// canary record, or it has none and its key is the canary's event id (which no other record's item can have).
func (r *run) canaryItem(item processor.Item) bool {
	if pos, ok := item[processor.AttrPosition]; ok {
		return bytes.Equal(bytesAttr(pos), r.position)
	}
	if r.keyNamesCanary && r.o.Config.markerKept() {
		return stringAttr(item[MarkerField]) == r.report.Nonce
	}
	return r.keyNamesCanary
}

func errorKey(p *Put) processor.Item {
	return processor.Item{processor.ErrorTablePartitionKey: &types.AttributeValueMemberS{Value: p.EventID}}
}

// malformedPayload is not JSON: every processor built on runtime/processor sends it to the error table.
func malformedPayload(nonce string) []byte {
	return []byte("kdp self-test malformed canary " + nonce + ": not JSON")
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// evidence collects what a wait saw, each distinct observation once.
type evidence struct {
	list []string
	seen map[string]bool
}

func (e *evidence) once(s string) {
	if e.seen == nil {
		e.seen = map[string]bool{}
	}
	if !e.seen[s] {
		e.seen[s] = true
		e.list = append(e.list, s)
	}
}

func (e *evidence) readError(table string, err error) {
	e.once(fmt.Sprintf("reading table %s failed: %v", table, err))
}

func bytesAttr(v types.AttributeValue) []byte {
	if b, ok := v.(*types.AttributeValueMemberB); ok {
		return b.Value
	}
	return nil
}

func stringAttr(v types.AttributeValue) string {
	if s, ok := v.(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

func printableKey(key processor.Item) map[string]string {
	out := make(map[string]string, len(key))
	for name, v := range key {
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			out[name] = fmt.Sprintf("%q", v.Value)
		case *types.AttributeValueMemberN:
			out[name] = v.Value
		case *types.AttributeValueMemberB:
			out[name] = "0x" + hex.EncodeToString(v.Value)
		default:
			out[name] = fmt.Sprintf("%T", v)
		}
	}
	return out
}

func formatKey(k map[string]string) string {
	names := make([]string, 0, len(k))
	for n := range k {
		names = append(names, n)
	}
	// At most two key attributes: partition key and sort key; sort by name for a stable message.
	if len(names) == 2 && names[0] > names[1] {
		names[0], names[1] = names[1], names[0]
	}
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + k[n]
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
