package processor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

var testNow = time.Date(2024, 9, 14, 0, 0, 0, 0, time.UTC)

func testKeys(cfg Config) []KeyAttribute {
	cfg = cfg.WithDefaults()
	keys := []KeyAttribute{cfg.PartitionKey}
	if cfg.SortKey != nil {
		keys = append(keys, *cfg.SortKey)
	}
	return keys
}

func newTestProcessor(t testing.TB, db DB, optFns ...func(*Options)) *Processor {
	t.Helper()
	fns := append([]func(*Options){func(o *Options) {
		o.TableName = testTable
		o.ErrorTableName = testErrorTable
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		o.MetricsWriter = io.Discard
		o.Now = func() time.Time { return testNow }
	}}, optFns...)
	p, err := New(db, fns...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	p.backoffBase = time.Millisecond
	return p
}

func valid(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(`{"n": %d}`, i)
	}
	return out
}

func throttle() error { return apiError("ProvisionedThroughputExceededException") }

func TestHandle(t *testing.T) {
	// The item itself is not a level: 33 braces make 32 levels of nested maps.
	deepNest := strings.Repeat(`{"a":`, 34) + "1" + strings.Repeat("}", 34)
	okNest := strings.Repeat(`{"a":`, 33) + "1" + strings.Repeat("}", 33)
	big := `{"s": "` + strings.Repeat("x", 410*1024) + `"}`
	type want struct {
		stored   []string // sequence numbers in the data table
		errors   []string // sequence numbers in the error table
		reported string   // the one batch item failure, "" for none
	}
	tests := []struct {
		name         string
		give         []string // payloads; record i has sequence number seq(i)
		noErrorTable bool
		cfg          Config
		transform    Transform
		maxInFlight  int
		timeout      time.Duration
		batchHook    func(ctx context.Context, n int, table string, reqs []types.WriteRequest) ([]types.WriteRequest, error)
		putHook      func(ctx context.Context, n int, table string, item Item) error
		want         want
	}{
		{name: "empty batch", give: nil, want: want{}},
		{name: "all stored", give: valid(3), want: want{stored: rangeList(0, 3)}},
		{name: "60 records in 3 chunks", give: valid(60), want: want{stored: rangeList(0, 60)}},
		{
			name: "not JSON objects go to the error table",
			give: []string{`{"ok":1}`, `{"a":`, `null`, `[1,2]`, `"s"`, `42`, "{\"a\":\"\xff\"}", `{"a":1} x`, ``, `true`, `{"ok":2}`},
			want: want{stored: seqList(0, 10), errors: rangeList(1, 10)},
		},
		{
			name: "DynamoDB rule breakers go to the error table",
			give: []string{
				`{"n": 123456789012345678901234567890123456789}`, // 39 significant digits
				`{"n": 1e126}`, `{"n": 1e-131}`, `{"": 1}`, `{"m": {"": 1}}`, deepNest, big,
				`{"n": 12345678901234567890123456789012345678000}`, // 38 significant digits
				`{"n": 9.9999999999999999999999999999999999999E+125}`, `{"n": 1E-130}`, `{"n": -0.0e-999}`, okNest,
			},
			want: want{stored: rangeList(7, 12), errors: rangeList(0, 7)},
		},
		{
			name:         "without an error table permanent failures are reported",
			give:         []string{`{"ok":1}`, `{"ok":2}`, `nope`, `{"ok":3}`, `null`},
			noErrorTable: true,
			want:         want{stored: seqList(0, 1, 3), reported: seq(2)},
		},
		{
			name: "transient transform error reports the record",
			give: []string{`{"k":"ok"}`, `{"k":"transient"}`, `{"k":"ok"}`, `{"k":"transient"}`},
			transform: func(ctx context.Context, r *Record) ([]Item, error) {
				if r.Data["k"] == "transient" {
					return nil, errors.New("downstream unavailable")
				}
				return DefaultTransform(Config{})(ctx, r)
			},
			want: want{stored: seqList(0, 2), reported: seq(1)},
		},
		{
			name: "skip, permanent, several items and a panic",
			give: []string{`{"k":"skip"}`, `{"k":"perm"}`, `{"k":"two"}`, `{"k":"none"}`, `{"k":"panic"}`},
			cfg:  Config{PartitionKey: KeyAttribute{Name: "id", Type: AttributeTypeString, Source: SourceEventID}, SortKey: &KeyAttribute{Name: "part", Type: AttributeTypeNumber, Source: "part"}},
			transform: func(ctx context.Context, r *Record) ([]Item, error) {
				switch r.Data["k"] {
				case "skip":
					return nil, fmt.Errorf("not for us: %w", ErrSkip)
				case "perm":
					return nil, Permanent(errors.New("bad order"))
				case "none":
					return nil, nil
				case "panic":
					panic("boom")
				}
				var items []Item
				for i := range 2 {
					items = append(items, Item{
						"id":               &types.AttributeValueMemberS{Value: r.EventID},
						"part":             &types.AttributeValueMemberN{Value: fmt.Sprint(i)},
						AttrSequenceNumber: &types.AttributeValueMemberS{Value: r.SequenceNumber},
					})
				}
				return items, nil
			},
			want: want{stored: seqList(2, 2), errors: seqList(1), reported: seq(4)},
		},
		{
			name: "throttling errors are retried",
			give: valid(30),
			batchHook: func(_ context.Context, n int, table string, _ []types.WriteRequest) ([]types.WriteRequest, error) {
				if table == testTable && n <= 3 {
					return nil, throttle()
				}
				return nil, nil
			},
			want: want{stored: rangeList(0, 30)},
		},
		{
			name: "partial unprocessed items are retried",
			give: valid(25),
			batchHook: func(_ context.Context, n int, _ string, reqs []types.WriteRequest) ([]types.WriteRequest, error) {
				if n <= 2 {
					return reqs[len(reqs)/2:], nil
				}
				return nil, nil
			},
			want: want{stored: rangeList(0, 25)},
		},
		{
			name:    "sustained throttling until the deadline reports the lowest unstored record",
			give:    valid(50),
			timeout: 300 * time.Millisecond,
			batchHook: func(_ context.Context, n int, table string, reqs []types.WriteRequest) ([]types.WriteRequest, error) {
				var stuck []types.WriteRequest // records 28 and later never get through
				for _, r := range reqs {
					if compareSequence(keySeq(r.PutRequest.Item), seq(28)) >= 0 {
						stuck = append(stuck, r)
					}
				}
				return stuck, nil
			},
			want: want{stored: rangeList(0, 28), reported: seq(28)},
		},
		{
			name: "failing error-table write reports the record",
			give: []string{`{"ok":1}`, `bad`, `{"ok":2}`, `bad`},
			batchHook: func(_ context.Context, _ int, table string, _ []types.WriteRequest) ([]types.WriteRequest, error) {
				if table == testErrorTable {
					return nil, apiError("AccessDeniedException")
				}
				return nil, nil
			},
			want: want{stored: seqList(0, 2), reported: seq(1)},
		},
		{
			name: "rejected error item is reported, others stored",
			give: []string{`bad0`, `bad1`, `{"ok":2}`},
			batchHook: func(_ context.Context, _ int, table string, reqs []types.WriteRequest) ([]types.WriteRequest, error) {
				if table == testErrorTable && len(reqs) > 1 {
					return nil, apiError("ValidationException")
				}
				return nil, nil
			},
			putHook: func(_ context.Context, _ int, table string, item Item) error {
				if table == testErrorTable && item[ErrorAttrSequenceNumber].(*types.AttributeValueMemberS).Value == seq(1) {
					return apiError("ValidationException")
				}
				return nil
			},
			want: want{stored: seqList(2), errors: seqList(0), reported: seq(1)},
		},
		{
			name: "duplicate keys: the later sequence number wins",
			give: []string{`{"id":"a","v":0}`, `{"id":"b","v":1}`, `{"id":"a","v":2}`, `{"id":"c","v":3}`, `{"id":"b","v":4}`},
			cfg:  Config{PartitionKey: KeyAttribute{Name: "id", Type: AttributeTypeString, Source: "id"}},
			want: want{stored: seqList(2, 3, 4)},
		},
		{
			name: "numerically equal number keys are duplicates",
			give: []string{`{"id":1,"v":0}`, `{"id":1.0,"v":1}`, `{"id":10e-1,"v":2}`},
			cfg:  Config{PartitionKey: KeyAttribute{Name: "id", Type: AttributeTypeNumber, Source: "id"}},
			want: want{stored: seqList(2)},
		},
		{
			name: "one invalid item among 25 is isolated",
			give: append(valid(12), append([]string{`{"poison":true}`}, valid(12)...)...),
			want: want{stored: append(rangeList(0, 12), rangeList(13, 25)...), errors: seqList(12)},
		},
		{
			name: "a full item collection among 25 is isolated",
			give: append(valid(12), append([]string{`{"full":true}`}, valid(12)...)...),
			batchHook: func(_ context.Context, _ int, table string, reqs []types.WriteRequest) ([]types.WriteRequest, error) {
				for _, r := range reqs {
					if _, full := r.PutRequest.Item["full"]; full && table == testTable {
						return nil, apiError("ItemCollectionSizeLimitExceededException")
					}
				}
				return nil, nil
			},
			putHook: func(_ context.Context, _ int, table string, item Item) error {
				if _, full := item["full"]; full && table == testTable {
					return apiError("ItemCollectionSizeLimitExceededException")
				}
				return nil
			},
			want: want{stored: append(rangeList(0, 12), rangeList(13, 25)...), errors: seqList(12)},
		},
		{
			name:         "one invalid item among 25 without an error table",
			give:         append(valid(12), append([]string{`{"poison":true}`}, valid(12)...)...),
			noErrorTable: true,
			want:         want{stored: append(rangeList(0, 12), rangeList(13, 25)...), reported: seq(12)},
		},
		{
			name: "an invalid winner falls back to the earlier record's item",
			give: []string{`{"id":"a","v":0}`, `{"id":"a","poison":1}`},
			cfg:  Config{PartitionKey: KeyAttribute{Name: "id", Type: AttributeTypeString, Source: "id"}},
			want: want{stored: seqList(0), errors: seqList(1)},
		},
		{
			name: "bad keys are permanent",
			give: []string{`{"id":"a"}`, `{"id":""}`, `{"id":5}`, `{}`, `{"id":null}`, `{"x":{"id":"a"}}`},
			cfg:  Config{PartitionKey: KeyAttribute{Name: "id", Type: AttributeTypeString, Source: "id"}},
			want: want{stored: seqList(0), errors: rangeList(1, 6)},
		},
		{
			name:        "context deadline hit mid-batch",
			give:        valid(75),
			maxInFlight: 1,
			timeout:     200 * time.Millisecond,
			batchHook: func(ctx context.Context, n int, table string, _ []types.WriteRequest) ([]types.WriteRequest, error) {
				if n == 2 {
					<-ctx.Done() // the second request hangs until the deadline
					return nil, ctx.Err()
				}
				return nil, nil
			},
			want: want{stored: rangeList(0, 25), reported: seq(25)},
		},
		{
			name: "non-retryable write error reports the chunk",
			give: valid(30),
			batchHook: func(_ context.Context, _ int, _ string, reqs []types.WriteRequest) ([]types.WriteRequest, error) {
				if len(reqs) == 5 {
					return nil, apiError("ResourceNotFoundException")
				}
				return nil, nil
			},
			want: want{stored: rangeList(0, 25), reported: seq(25)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newFakeDB(map[string][]KeyAttribute{testTable: testKeys(tt.cfg), testErrorTable: {{Name: "id", Type: AttributeTypeString}}})
			db.batchHook, db.putHook = tt.batchHook, tt.putHook
			// Under an event-id key the key names each item's record; under a business key the items carry the
			// sequence number, asked for explicitly.
			cfg, byEventID := tt.cfg, tt.cfg.WithDefaults().PartitionKey.Source == SourceEventID
			if !byEventID {
				cfg.Metadata = []string{AttrSequenceNumber}
			}
			storedSeqs := func() []string {
				if byEventID {
					return db.keySeqs(testTable)
				}
				return db.seqs(testTable, AttrSequenceNumber)
			}
			p := newTestProcessor(t, db, func(o *Options) {
				o.Config = cfg
				o.Transform = tt.transform
				o.MaxInFlight = tt.maxInFlight
				if tt.noErrorTable {
					o.ErrorTableName = ""
				}
			})
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			resp, err := p.Handle(ctx, event(tt.give...))
			if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			var reported string
			if len(resp.BatchItemFailures) > 1 {
				t.Fatalf("got %d batch item failures, want at most 1", len(resp.BatchItemFailures))
			}
			if len(resp.BatchItemFailures) == 1 {
				reported = resp.BatchItemFailures[0].ItemIdentifier
			}
			if reported != tt.want.reported {
				t.Errorf("reported %q, want %q", reported, tt.want.reported)
			}
			if got := storedSeqs(); !slices.Equal(got, tt.want.stored) {
				t.Errorf("data table holds\n%v\nwant\n%v", got, tt.want.stored)
			}
			if got := db.seqs(testErrorTable, ErrorAttrSequenceNumber); !slices.Equal(got, tt.want.errors) {
				t.Errorf("error table holds\n%v\nwant\n%v", got, tt.want.errors)
			}
		})
	}
}

// TestHandleSlowTransforms: transforms that would run past the deadline stop while there is time to write what they
// made; Handle returns before the deadline, the stored records are a prefix and the first record not stored is
// reported, so the next invocation starts there.
func TestHandleSlowTransforms(t *testing.T) {
	db := newFakeDB(map[string][]KeyAttribute{testTable: testKeys(Config{}), testErrorTable: {{Name: "id", Type: AttributeTypeString}}})
	p := newTestProcessor(t, db, func(o *Options) {
		o.Transform = func(ctx context.Context, r *Record) ([]Item, error) {
			time.Sleep(30 * time.Millisecond) // CPU-bound: does not watch ctx
			return DefaultTransform(Config{})(ctx, r)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	dl, _ := ctx.Deadline()
	resp, err := p.Handle(ctx, event(valid(20)...))
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if late := time.Since(dl); late >= 0 {
		t.Fatalf("Handle returned %v after the deadline", late)
	}
	stored := db.keySeqs(testTable)
	if len(stored) == 0 || len(stored) == 20 {
		t.Fatalf("stored %d records, want some but not all 20", len(stored))
	}
	if want := rangeList(0, len(stored)); !slices.Equal(stored, want) {
		t.Errorf("stored %v, want the prefix %v", stored, want)
	}
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != seq(len(stored)) {
		t.Errorf("reported %v, want %s", resp.BatchItemFailures, seq(len(stored)))
	}
	if got := db.seqs(testErrorTable, ErrorAttrSequenceNumber); len(got) != 0 {
		t.Errorf("error table holds %v, want nothing", got)
	}
}

// TestWriteContextDeadline: the write and transform deadlines are never later than the caller's, even once it passed.
func TestWriteContextDeadline(t *testing.T) {
	for _, left := range []time.Duration{-time.Second, 0, 10 * time.Millisecond, time.Minute} {
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(left))
		dl, _ := ctx.Deadline()
		wctx, wcancel := writeContext(ctx)
		tctx, tcancel := transformContext(wctx)
		wdl, _ := wctx.Deadline()
		tdl, _ := tctx.Deadline()
		if wdl.After(dl) || tdl.After(wdl) {
			t.Errorf("%v left: deadlines %v, write %v, transform %v", left, dl, wdl, tdl)
		}
		tcancel()
		wcancel()
		cancel()
	}
}

// incompressible returns n bytes gzip cannot shrink (xorshift).
func incompressible(n int) []byte {
	b := make([]byte, n)
	x := uint32(7)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// TestHandlePayloadInParts: a payload too big for an error item even compressed is stored whole, in part items; the
// record is acknowledged only once the error item and all its parts are stored, and a replay rewrites the same ids.
func TestHandlePayloadInParts(t *testing.T) {
	if got := ErrorPartID("s:1", 2); got != "s:1#part-2" {
		t.Fatalf("ErrorPartID = %q", got)
	}
	big := incompressible(1 << 20)
	ev := event(`{"ok":1}`, string(big), `{"ok":2}`)
	id := ev.Records[1].EventID
	errKeys := []KeyAttribute{{Name: ErrorTablePartitionKey, Type: AttributeTypeString}}
	db := newFakeDB(map[string][]KeyAttribute{testTable: testKeys(Config{}), testErrorTable: errKeys})
	p := newTestProcessor(t, db)
	handle := func(timeout time.Duration) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		resp, err := p.Handle(ctx, ev)
		if err != nil {
			t.Fatalf("Handle: %v", err)
		}
		if len(resp.BatchItemFailures) == 0 {
			return ""
		}
		return resp.BatchItemFailures[0].ItemIdentifier
	}
	errorItems := func() []Item {
		db.mu.Lock()
		defer db.mu.Unlock()
		items := []Item{db.tables[testErrorTable][itemKey(Item{ErrorTablePartitionKey: s(id)}, errKeys)]}
		for k := 1; ; k++ {
			it, ok := db.tables[testErrorTable][itemKey(Item{ErrorTablePartitionKey: s(ErrorPartID(id, k))}, errKeys)]
			if !ok {
				return items
			}
			items = append(items, it)
		}
	}

	// Part 2 never gets through: the record is reported, not acknowledged.
	db.batchHook = func(_ context.Context, _ int, table string, reqs []types.WriteRequest) ([]types.WriteRequest, error) {
		for _, r := range reqs {
			if v, ok := r.PutRequest.Item[ErrorAttrPart].(*types.AttributeValueMemberN); ok && v.Value == "2" {
				return []types.WriteRequest{r}, nil
			}
		}
		return nil, nil
	}
	if got := handle(time.Second); got != seq(1) {
		t.Fatalf("with a part not stored, reported %q, want %s", got, seq(1))
	}
	if got := db.keySeqs(testTable); !slices.Equal(got, seqList(0, 2)) {
		t.Errorf("data table holds %v", got)
	}

	// The replay stores everything under the same ids.
	db.batchHook = nil
	if got := handle(5 * time.Second); got != "" {
		t.Fatalf("replay reported %q, want nothing", got)
	}
	items := errorItems()
	if len(items) != 4 {
		t.Fatalf("%d error-table items for the record, want the error item and 3 parts", len(items))
	}
	checkParts(t, items, big, id, nil)
	if got, want := len(db.tables[testErrorTable]), len(items); got != want {
		t.Errorf("error table holds %d items, want %d", got, want)
	}
	if v := items[0][ErrorAttrSequenceNumber]; !reflect.DeepEqual(v, s(seq(1))) {
		t.Errorf("error item sequence number %v", v)
	}
}
