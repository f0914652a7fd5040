package dynamostandin_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
)

const table = "data"

// newClient returns a real SDK client for url. maxAttempts 0 keeps the SDK's default retryer (4 attempts for
// DynamoDB).
func newClient(url string, maxAttempts int) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		BaseEndpoint:     aws.String(url),
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDSTANDIN", "secret", ""),
		RetryMaxAttempts: maxAttempts,
	})
}

func start(t *testing.T, opts dynamostandin.Options) *dynamostandin.Server {
	t.Helper()
	s := dynamostandin.New(opts)
	t.Cleanup(s.Close)
	return s
}

func item(id string, extra ...types.AttributeValue) map[string]types.AttributeValue {
	it := map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: id}}
	for i, v := range extra {
		it[fmt.Sprintf("a%d", i)] = v
	}
	return it
}

func batch(ids ...string) *dynamodb.BatchWriteItemInput {
	reqs := make([]types.WriteRequest, 0, len(ids))
	for _, id := range ids {
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: item(id, &types.AttributeValueMemberN{Value: "1"})}})
	}
	return &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: reqs}}
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func unprocessedIDs(out *dynamodb.BatchWriteItemOutput) []string {
	var got []string
	for _, r := range out.UnprocessedItems[table] {
		got = append(got, r.PutRequest.Item["id"].(*types.AttributeValueMemberS).Value)
	}
	sort.Strings(got)
	return got
}

func errorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

func TestAnswerStoresItems(t *testing.T) {
	ctx := context.Background()
	sample := map[string]types.AttributeValue{
		"id":       &types.AttributeValueMemberS{Value: "shardId-000000000000:4963"},
		"Value":    &types.AttributeValueMemberN{Value: "81"},
		"Category": &types.AttributeValueMemberS{Value: "C"},
		"Nested": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			"L":    &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberNULL{Value: true}, &types.AttributeValueMemberBOOL{Value: false}}},
			"B":    &types.AttributeValueMemberB{Value: []byte{0, 1, 2}},
			"SS":   &types.AttributeValueMemberSS{Value: []string{"x", "y"}},
			"Deep": &types.AttributeValueMemberNS{Value: []string{"1.5", "-2"}},
		}},
	}
	tests := []struct {
		name     string
		call     func(c *dynamodb.Client) error
		wantCode string
		wantKeys []string
		check    func(t *testing.T, items map[string]dynamostandin.Item)
	}{
		{
			name: "put item keeps every value exactly",
			call: func(c *dynamodb.Client) error {
				_, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: sample})
				return err
			},
			wantKeys: []string{"shardId-000000000000:4963"},
			check: func(t *testing.T, items map[string]dynamostandin.Item) {
				if got := items["shardId-000000000000:4963"]; !reflect.DeepEqual(map[string]types.AttributeValue(got), sample) {
					t.Errorf("stored item = %#v, want %#v", got, sample)
				}
			},
		},
		{
			name: "batch of 25",
			call: func(c *dynamodb.Client) error {
				out, err := c.BatchWriteItem(ctx, batch(ids("k", 25)...))
				if err == nil && len(out.UnprocessedItems) != 0 {
					return fmt.Errorf("unexpected unprocessed items: %v", out.UnprocessedItems)
				}
				return err
			},
			wantKeys: ids("k", 25),
		},
		{
			name: "batch with a delete",
			call: func(c *dynamodb.Client) error {
				if _, err := c.BatchWriteItem(ctx, batch("a", "b")); err != nil {
					return err
				}
				_, err := c.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: {
					{DeleteRequest: &types.DeleteRequest{Key: item("a")}},
				}}})
				return err
			},
			wantKeys: []string{"b"},
		},
		{
			name: "26 write requests are rejected",
			call: func(c *dynamodb.Client) error {
				_, err := c.BatchWriteItem(ctx, batch(ids("k", 26)...))
				return err
			},
			wantCode: "ValidationException",
		},
		{
			name: "duplicate keys reject the whole batch",
			call: func(c *dynamodb.Client) error {
				_, err := c.BatchWriteItem(ctx, batch("a", "b", "a"))
				return err
			},
			wantCode: "ValidationException",
		},
		{
			name: "missing key rejects the whole batch",
			call: func(c *dynamodb.Client) error {
				in := batch("a")
				in.RequestItems[table] = append(in.RequestItems[table], types.WriteRequest{PutRequest: &types.PutRequest{
					Item: map[string]types.AttributeValue{"other": &types.AttributeValueMemberS{Value: "x"}}}})
				_, err := c.BatchWriteItem(ctx, in)
				return err
			},
			wantCode: "ValidationException",
		},
		{
			name: "empty string key",
			call: func(c *dynamodb.Client) error {
				_, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item("")})
				return err
			},
			wantCode: "ValidationException",
		},
		{
			name: "item over 400 KB",
			call: func(c *dynamodb.Client) error {
				_, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table),
					Item: item("big", &types.AttributeValueMemberS{Value: strings.Repeat("x", 400*1024)})})
				return err
			},
			wantCode: "ValidationException",
		},
		{
			name: "other operations are unknown without an upstream",
			call: func(c *dynamodb.Client) error {
				_, err := c.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(table), Key: item("a")})
				return err
			},
			wantCode: "UnknownOperationException",
		},
	}
	for _, bad := range []struct {
		name string
		v    types.AttributeValue
	}{
		{"39 significant digits", &types.AttributeValueMemberN{Value: "123456789012345678901234567890123456789"}},
		{"number too large", &types.AttributeValueMemberN{Value: "1E+126"}},
		{"number too small", &types.AttributeValueMemberN{Value: "0.1E-130"}},
		{"not a number", &types.AttributeValueMemberN{Value: "0x10"}},
		{"empty string set", &types.AttributeValueMemberSS{Value: []string{}}},
		{"duplicate numbers in a set", &types.AttributeValueMemberNS{Value: []string{"1", "1.0"}}},
		{"duplicate binaries in a set", &types.AttributeValueMemberBS{Value: [][]byte{{1}, {1}}}},
		{"item over 400 KB by UTF-8 bytes", &types.AttributeValueMemberS{Value: strings.Repeat("é", 205*1024)}},
	} {
		tests = append(tests, struct {
			name     string
			call     func(c *dynamodb.Client) error
			wantCode string
			wantKeys []string
			check    func(t *testing.T, items map[string]dynamostandin.Item)
		}{
			name: "rejects " + bad.name,
			call: func(c *dynamodb.Client) error {
				_, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item("a", bad.v)})
				return err
			},
			wantCode: "ValidationException",
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, dynamostandin.Options{})
			err := tt.call(newClient(s.URL(), 1))
			if got := errorCode(err); got != tt.wantCode {
				t.Fatalf("error code = %q (err %v), want %q", got, err, tt.wantCode)
			}
			items := s.Items(table)
			if got := keysOf(items); !reflect.DeepEqual(got, tt.wantKeys) && len(got)+len(tt.wantKeys) > 0 {
				t.Errorf("stored keys = %v, want %v", got, tt.wantKeys)
			}
			if tt.check != nil {
				tt.check(t, items)
			}
		})
	}
}

func TestCompositeKeyAndDiscard(t *testing.T) {
	ctx := context.Background()
	s := start(t, dynamostandin.Options{KeyAttributes: map[string][]string{"events": {"pk", "sk"}}})
	c := newClient(s.URL(), 1)
	_, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("events"), Item: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "user"}, "sk": &types.AttributeValueMemberN{Value: "7"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(s.Items("events")); !reflect.DeepEqual(got, []string{"user|7"}) {
		t.Errorf("keys = %v, want [user|7]", got)
	}

	d := start(t, dynamostandin.Options{Discard: true})
	if _, err := newClient(d.URL(), 1).BatchWriteItem(ctx, batch("a", "b")); err != nil {
		t.Fatal(err)
	}
	if n := len(d.Items(table)); n != 0 {
		t.Errorf("discarding server stored %d items", n)
	}
	if _, err := newClient(d.URL(), 1).BatchWriteItem(ctx, batch(ids("k", 26)...)); errorCode(err) != "ValidationException" {
		t.Errorf("26 write requests: err = %v, want a ValidationException", err)
	}
	if got := d.Stats().ItemsWritten; got != 2 {
		t.Errorf("ItemsWritten = %d, want 2", got)
	}
}

func TestFaults(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name        string
		opts        dynamostandin.Options
		maxAttempts int // 0: the SDK's default for DynamoDB, 4 attempts
		wantCode    string
		wantErrText string
		wantStored  int
		wantStats   dynamostandin.Stats
	}{
		{
			name:        "throttling, raw",
			opts:        dynamostandin.Options{ThrottleRate: 1},
			maxAttempts: 1,
			wantCode:    "ProvisionedThroughputExceededException",
			wantStats:   dynamostandin.Stats{Requests: 1, Throttled: 1},
		},
		{
			name:        "throttling is retried by the SDK",
			opts:        dynamostandin.Options{ThrottleRate: 1},
			maxAttempts: 2, // the default (4 for DynamoDB) backs off for seconds
			wantCode:    "ProvisionedThroughputExceededException",
			wantStats:   dynamostandin.Stats{Requests: 2, Throttled: 2},
		},
		{
			name:      "validation errors are not retried",
			opts:      dynamostandin.Options{ValidationRate: 1},
			wantCode:  "ValidationException",
			wantStats: dynamostandin.Stats{Requests: 1, ValidationErrors: 1},
		},
		{
			name:        "dropped connection, raw",
			opts:        dynamostandin.Options{DropRate: 1},
			maxAttempts: 1,
			wantErrText: "connection reset",
			wantStats:   dynamostandin.Stats{Requests: 1, Dropped: 1},
		},
		{
			name:        "dropped connection is retried by the SDK",
			opts:        dynamostandin.Options{DropRate: 1},
			wantErrText: "connection reset",
			wantStats:   dynamostandin.Stats{Requests: 4, Dropped: 4}, // DynamoDB's default: 4 attempts
		},
		{
			name:        "dropped after apply: stored, yet the client sees an error",
			opts:        dynamostandin.Options{DropRate: 1, DropAfterApply: true},
			maxAttempts: 1,
			wantErrText: "connection reset",
			wantStored:  3,
			wantStats:   dynamostandin.Stats{Requests: 1, Dropped: 1, ItemsWritten: 3},
		},
		{
			name:        "faults limited to other operations",
			opts:        dynamostandin.Options{ThrottleRate: 1, FaultOperations: []string{dynamostandin.OpPutItem}},
			maxAttempts: 1,
			wantStored:  3,
			wantStats:   dynamostandin.Stats{Requests: 1, ItemsWritten: 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, tt.opts)
			_, err := newClient(s.URL(), tt.maxAttempts).BatchWriteItem(ctx, batch("a", "b", "c"))
			if got := errorCode(err); got != tt.wantCode {
				t.Errorf("error code = %q (err %v), want %q", got, err, tt.wantCode)
			}
			if tt.wantErrText != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErrText)) {
				t.Errorf("err = %v, want it to mention %q", err, tt.wantErrText)
			}
			if tt.wantCode == "" && tt.wantErrText == "" && err != nil {
				t.Errorf("unexpected error: %v", err)
			}
			if got := len(s.Items(table)); got != tt.wantStored {
				t.Errorf("stored %d items, want %d", got, tt.wantStored)
			}
			got := s.Stats()
			got.Operations = nil
			if !reflect.DeepEqual(got, tt.wantStats) {
				t.Errorf("stats = %+v, want %+v", got, tt.wantStats)
			}
		})
	}
}

func TestUnprocessedItems(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name            string
		fraction        float64
		n               int
		wantUnprocessed int
	}{
		{"a fifth of 25", 0.2, 25, 5},
		{"rounded up", 0.1, 3, 1},
		{"default half", 0, 10, 5},
		{"all of one", 0.5, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, dynamostandin.Options{UnprocessedRate: 1, UnprocessedFraction: tt.fraction, Seed: 7})
			all := ids("k", tt.n)
			out, err := newClient(s.URL(), 1).BatchWriteItem(ctx, batch(all...))
			if err != nil {
				t.Fatal(err)
			}
			held := unprocessedIDs(out)
			if len(held) != tt.wantUnprocessed {
				t.Fatalf("unprocessed = %v, want %d of them", held, tt.wantUnprocessed)
			}
			stored := keysOf(s.Items(table))
			union := append(append([]string{}, stored...), held...)
			sort.Strings(union)
			if !reflect.DeepEqual(union, all) {
				t.Errorf("stored %v + unprocessed %v != all %v", stored, held, all)
			}
			st := s.Stats()
			if st.PartialBatches != 1 || st.UnprocessedItems != int64(tt.wantUnprocessed) || st.ItemsWritten != int64(tt.n-tt.wantUnprocessed) {
				t.Errorf("stats = %+v", st)
			}
			// Retrying the unprocessed items succeeds on a server that injects no more faults.
			clean := start(t, dynamostandin.Options{})
			if _, err := newClient(clean.URL(), 1).BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: out.UnprocessedItems}); err != nil {
				t.Errorf("unprocessed items are not a valid request: %v", err)
			}
		})
	}
}

// outcomes sends n sequential PutItem requests and returns one letter per request: '.' ok, 'T' throttled, 'V'
// validation error, 'D' dropped.
func outcomes(t *testing.T, opts dynamostandin.Options, n int) string {
	t.Helper()
	s := start(t, opts)
	c := newClient(s.URL(), 1)
	var b strings.Builder
	for i := range n {
		_, err := c.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item(fmt.Sprint(i))})
		switch {
		case err == nil:
			b.WriteByte('.')
		case errorCode(err) == "ProvisionedThroughputExceededException":
			b.WriteByte('T')
		case errorCode(err) == "ValidationException":
			b.WriteByte('V')
		case strings.Contains(err.Error(), "connection reset"):
			b.WriteByte('D')
		default:
			t.Fatalf("request %d: unexpected error %v", i, err)
		}
	}
	return b.String()
}

func TestRatesAreDeterministicUnderASeed(t *testing.T) {
	const n = 300
	opts := dynamostandin.Options{Seed: 42, ThrottleRate: 0.2, ValidationRate: 0.1, DropRate: 0.05}
	first := outcomes(t, opts, n)
	if again := outcomes(t, opts, n); again != first {
		t.Errorf("same seed, different faults:\n%s\n%s", first, again)
	}
	opts.Seed = 43
	if other := outcomes(t, opts, n); other == first {
		t.Errorf("different seeds gave the same faults: %s", other)
	}
	// Expected shares: drop 5%, throttle 0.95*20% = 19%, validation 0.95*0.8*10% = 7.6%.
	for _, c := range []struct {
		letter   byte
		min, max int
	}{{'D', 5, 30}, {'T', 35, 85}, {'V', 10, 40}, {'.', 160, 240}} {
		if got := strings.Count(first, string(c.letter)); got < c.min || got > c.max {
			t.Errorf("%c: %d of %d, want %d..%d", c.letter, got, n, c.min, c.max)
		}
	}
}

func TestLatency(t *testing.T) {
	tests := []struct {
		name     string
		opts     dynamostandin.Options
		min, max time.Duration
	}{
		{"fixed", dynamostandin.Options{Latency: 40 * time.Millisecond}, 40 * time.Millisecond, 400 * time.Millisecond},
		{"jitter", dynamostandin.Options{Latency: 10 * time.Millisecond, LatencyJitter: 30 * time.Millisecond}, 10 * time.Millisecond, 400 * time.Millisecond},
		{"none", dynamostandin.Options{}, 0, 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, tt.opts)
			c := newClient(s.URL(), 1)
			var total time.Duration
			const n = 5
			for range n {
				began := time.Now()
				if _, err := c.BatchWriteItem(context.Background(), batch("a")); err != nil {
					t.Fatal(err)
				}
				d := time.Since(began)
				if d < tt.min || d > tt.max {
					t.Errorf("request took %v, want %v..%v", d, tt.min, tt.max)
				}
				total += d
			}
			if tt.opts.LatencyJitter > 0 && total < n*tt.opts.Latency+time.Millisecond {
				t.Errorf("jitter added nothing: %v for %d requests", total, n)
			}
		})
	}
}

func TestLatencyStopsWhenTheClientGivesUp(t *testing.T) {
	s := start(t, dynamostandin.Options{Latency: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err := newClient(s.URL(), 1).BatchWriteItem(ctx, batch("a"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want a deadline error", err)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	if n := len(s.Items(table)); n != 0 {
		t.Errorf("stored %d items of an abandoned request", n)
	}
}

func TestProxy(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name            string
		proxy, upstream dynamostandin.Options
		wantCode        string
		wantStored      int
		wantUnprocessed int
	}{
		{name: "passes through", wantStored: 25},
		{
			name:            "merges its own and the upstream's unprocessed items",
			proxy:           dynamostandin.Options{UnprocessedRate: 1, UnprocessedFraction: 0.2},
			upstream:        dynamostandin.Options{UnprocessedRate: 1, UnprocessedFraction: 0.5},
			wantStored:      10,
			wantUnprocessed: 15,
		},
		{
			name:            "withholds everything without asking the upstream",
			proxy:           dynamostandin.Options{UnprocessedRate: 1, UnprocessedFraction: 1},
			wantUnprocessed: 25,
		},
		{
			name:     "forwards the upstream's errors",
			upstream: dynamostandin.Options{ThrottleRate: 1},
			wantCode: "ProvisionedThroughputExceededException",
		},
		{
			name:     "throttles without asking the upstream",
			proxy:    dynamostandin.Options{ThrottleRate: 1},
			wantCode: "ProvisionedThroughputExceededException",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := start(t, tt.upstream)
			tt.proxy.Upstream = up.URL()
			p := start(t, tt.proxy)
			out, err := newClient(p.URL(), 1).BatchWriteItem(ctx, batch(ids("k", 25)...))
			if got := errorCode(err); got != tt.wantCode {
				t.Fatalf("error code = %q (err %v), want %q", got, err, tt.wantCode)
			}
			if got := len(up.Items(table)); got != tt.wantStored {
				t.Errorf("upstream stored %d, want %d", got, tt.wantStored)
			}
			if err != nil {
				return
			}
			held := unprocessedIDs(out)
			if len(held) != tt.wantUnprocessed {
				t.Errorf("unprocessed %d, want %d", len(held), tt.wantUnprocessed)
			}
			union := append(keysOf(up.Items(table)), held...)
			sort.Strings(union)
			if !reflect.DeepEqual(union, ids("k", 25)) {
				t.Errorf("stored + unprocessed = %v, want every item once", union)
			}
			if got := p.Stats().ItemsWritten; got != int64(tt.wantStored) {
				t.Errorf("proxy ItemsWritten = %d, want %d", got, tt.wantStored)
			}
		})
	}
}

func TestProxyOtherOperations(t *testing.T) {
	up := start(t, dynamostandin.Options{})
	p := start(t, dynamostandin.Options{Upstream: up.URL()})
	_, err := newClient(p.URL(), 1).DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: aws.String(table), Key: item("a")})
	if got := errorCode(err); got != "UnknownOperationException" {
		t.Errorf("error code = %q (err %v): the upstream's answer should come back", got, err)
	}
	if st := p.Stats(); st.Forwarded != 1 || st.Operations["DeleteItem"] != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestInvalidOptionsPanic(t *testing.T) {
	tests := []struct {
		name string
		opts dynamostandin.Options
		want string
	}{
		{"rate above one", dynamostandin.Options{ThrottleRate: 1.5}, "ThrottleRate"},
		{"negative rate", dynamostandin.Options{DropRate: -0.1}, "DropRate"},
		{"bad upstream", dynamostandin.Options{Upstream: "127.0.0.1:8000"}, "Upstream"},
		{"negative latency", dynamostandin.Options{Latency: -time.Second}, "Latency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), tt.want) {
					t.Errorf("panic = %v, want one naming %s", r, tt.want)
				}
			}()
			s := dynamostandin.New(tt.opts)
			s.Close()
		})
	}
}

// TestConditionsAndGetItem: PutItem evaluates its ConditionExpression against the item the table holds (strings
// and binaries byte by byte, numbers by value, a missing attribute or another type false), and GetItem reads items
// back, projected.
func TestConditionsAndGetItem(t *testing.T) {
	ctx := context.Background()
	b := func(v ...byte) types.AttributeValue { return &types.AttributeValueMemberB{Value: v} }
	sv := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	nv := func(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
	const laterWins = "attribute_not_exists(#p) OR (begins_with(#p, :s) AND #p <= :p)"
	tests := []struct {
		name     string
		existing map[string]types.AttributeValue // nil: no item
		cond     string
		names    map[string]string
		values   map[string]types.AttributeValue
		wantCode string
	}{
		{name: "no item", cond: laterWins, names: map[string]string{"#p": "pos"}, values: map[string]types.AttributeValue{":s": b(1, 'a'), ":p": b(1, 'a', 5)}},
		{name: "no attribute", existing: item("k"), cond: laterWins, names: map[string]string{"#p": "pos"}, values: map[string]types.AttributeValue{":s": b(1, 'a'), ":p": b(1, 'a', 5)}},
		{name: "same shard, earlier", existing: item("k", b(1, 'a', 4)), cond: "attribute_not_exists(#p) OR (begins_with(#p, :s) AND #p <= :p)",
			names: map[string]string{"#p": "a0"}, values: map[string]types.AttributeValue{":s": b(1, 'a'), ":p": b(1, 'a', 5)}},
		{name: "same shard, equal", existing: item("k", b(1, 'a', 5)), cond: laterWins,
			names: map[string]string{"#p": "a0"}, values: map[string]types.AttributeValue{":s": b(1, 'a'), ":p": b(1, 'a', 5)}},
		{name: "same shard, later (bytes compare unsigned)", existing: item("k", b(1, 'a', 0x80)), cond: laterWins,
			names: map[string]string{"#p": "a0"}, values: map[string]types.AttributeValue{":s": b(1, 'a'), ":p": b(1, 'a', 0x7f)}, wantCode: "ConditionalCheckFailedException"},
		{name: "another shard, lower", existing: item("k", b(1, 'A', 0)), cond: laterWins,
			names: map[string]string{"#p": "a0"}, values: map[string]types.AttributeValue{":s": b(1, 'a'), ":p": b(1, 'a', 5)}, wantCode: "ConditionalCheckFailedException"},
		{name: "another type", existing: item("k", sv("x")), cond: laterWins,
			names: map[string]string{"#p": "a0"}, values: map[string]types.AttributeValue{":s": b(1, 'a'), ":p": b(1, 'a', 5)}, wantCode: "ConditionalCheckFailedException"},
		{name: "insert, free", cond: "attribute_not_exists(#k)", names: map[string]string{"#k": "id"}},
		{name: "insert, taken", existing: item("k"), cond: "attribute_not_exists(#k)", names: map[string]string{"#k": "id"}, wantCode: "ConditionalCheckFailedException"},
		{name: "numbers by value", existing: item("k", nv("10")), cond: "a0 < :n AND NOT a0 = :m", values: map[string]types.AttributeValue{":n": nv("9.5e1"), ":m": nv("1e1")}, wantCode: "ConditionalCheckFailedException"},
		{name: "numbers by value, true", existing: item("k", nv("10")), cond: "a0 < :n AND NOT (a0 = :m)", values: map[string]types.AttributeValue{":n": nv("9.5e1"), ":m": nv("1.1e1")}},
		{name: "strings by bytes", existing: item("k", sv("Z")), cond: "a0 >= :v", values: map[string]types.AttributeValue{":v": sv("a")}, wantCode: "ConditionalCheckFailedException"},
		{name: "unused name", existing: item("k"), cond: "attribute_exists(id)", names: map[string]string{"#x": "y"}, wantCode: "ValidationException"},
		{name: "undefined value", existing: item("k"), cond: "id = :v", wantCode: "ValidationException"},
		{name: "unsupported function", existing: item("k"), cond: "size(id) > :v", values: map[string]types.AttributeValue{":v": nv("1")}, wantCode: "ValidationException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, dynamostandin.Options{})
			c := newClient(s.URL(), 1)
			if tt.existing != nil {
				tt.existing["id"] = sv("k")
				if _, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: tt.existing}); err != nil {
					t.Fatal(err)
				}
			}
			in := &dynamodb.PutItemInput{TableName: aws.String(table), Item: item("k", sv("new")), ConditionExpression: aws.String(tt.cond),
				ExpressionAttributeNames: tt.names, ExpressionAttributeValues: tt.values}
			_, err := c.PutItem(ctx, in)
			if got := errorCode(err); got != tt.wantCode {
				t.Fatalf("error code %q (%v), want %q", got, err, tt.wantCode)
			}
			out, err := c.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: item("k"), ConsistentRead: aws.Bool(true),
				ProjectionExpression: aws.String("#a, id"), ExpressionAttributeNames: map[string]string{"#a": "a0"}})
			if err != nil {
				t.Fatal(err)
			}
			written := tt.wantCode == ""
			var want map[string]types.AttributeValue
			switch {
			case written:
				want = map[string]types.AttributeValue{"id": sv("k"), "a0": sv("new")}
			case tt.existing != nil:
				want = map[string]types.AttributeValue{"id": sv("k")}
				if v, ok := tt.existing["a0"]; ok {
					want["a0"] = v
				}
			}
			if len(out.Item)+len(want) > 0 && !reflect.DeepEqual(out.Item, want) {
				t.Errorf("GetItem = %#v, want %#v", out.Item, want)
			}
		})
	}
}

// TestNumericKeys: numbers DynamoDB stores as one value are one key.
func TestNumericKeys(t *testing.T) {
	ctx := context.Background()
	s := start(t, dynamostandin.Options{KeyAttributes: map[string][]string{table: {"n"}}})
	c := newClient(s.URL(), 1)
	for _, v := range []string{"1", "1.0", "10e-1", "0.1e1"} {
		if _, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
			"n": &types.AttributeValueMemberN{Value: v}, "v": &types.AttributeValueMemberS{Value: v}}}); err != nil {
			t.Fatal(err)
		}
	}
	items := s.Items(table)
	if len(items) != 1 {
		t.Fatalf("%d items, want 1: %v", len(items), keysOf(items))
	}
	if got := items["1"]["v"]; !reflect.DeepEqual(got, &types.AttributeValueMemberS{Value: "0.1e1"}) {
		t.Errorf("item %v", items)
	}
	out, err := c.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: {
		{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{"n": &types.AttributeValueMemberN{Value: "2"}}}},
		{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{"n": &types.AttributeValueMemberN{Value: "2.00"}}}},
	}}})
	if errorCode(err) != "ValidationException" {
		t.Errorf("a batch holding 2 and 2.00: %v, %v; want a ValidationException (duplicate keys)", out, err)
	}
}

// TestNumericKeyForms: the canonical key of a number, as Items keys it.
func TestNumericKeyForms(t *testing.T) {
	for give, want := range map[string]string{
		"-0.0105": "-0.0105", "12.50": "12.5", "1500": "1500", "15e2": "1500", "1e100": "0.1e101", "-0.0": "0", "0.5e-50": "0.5e-50",
	} {
		it := dynamostandin.Item{"n": &types.AttributeValueMemberN{Value: give}}
		got, err := dynamostandin.KeyString(it, []string{"n"})
		if err != nil || got != want {
			t.Errorf("KeyString(%s) = %q, %v; want %q", give, got, err, want)
		}
	}
}
