//go:build integration

package processor_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/big"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// Integration tests against dynalite (DESIGN.md section 6) through the real SDK client. Run with
// `go test -tags integration ./runtime/...` after `npm ci`.

// dynaliteTables starts dynalite (or uses $PIPELINE_TEST_DYNAMODB_ENDPOINT), creates a data and an error table, and
// returns the endpoint, a client for reading back, and the two table names.
func dynaliteTables(t *testing.T) (endpoint string, db *dynamodb.Client, table, errorTable string) {
	t.Helper()
	endpoint = emulators.Dynalite(t)
	db = emulators.DynamoDBClient(endpoint)
	table, errorTable = emulators.UniqueName("data"), emulators.UniqueName("errors")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range []string{table, errorTable} {
		if err := emulators.CreateTable(ctx, db, name); err != nil {
			t.Fatal(err)
		}
	}
	return endpoint, db, table, errorTable
}

// scan returns every item of table keyed by its "id".
func scan(t *testing.T, db *dynamodb.Client, table string) map[string]processor.Item {
	t.Helper()
	out := map[string]processor.Item{}
	pages := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatalf("scan %s: %v", table, err)
		}
		for _, it := range page.Items {
			id, ok := it["id"].(*types.AttributeValueMemberS)
			if !ok {
				t.Fatalf("scan %s: item without a string id: %v", table, it)
			}
			out[id.Value] = it
		}
	}
	return out
}

// newProcessor returns a processor writing through the real SDK client to endpoint, with a fixed clock.
func newProcessor(t *testing.T, endpoint, table, errorTable string, now time.Time, opts ...func(*processor.Options)) *processor.Processor {
	t.Helper()
	p, err := processor.New(newSDKClient(endpoint), append([]func(*processor.Options){quiet(table, errorTable), func(o *processor.Options) {
		o.Now = func() time.Time { return now }
	}}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func handle(t *testing.T, p *processor.Processor, ev events.KinesisEvent) events.KinesisEventResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := p.Handle(ctx, ev)
	if err != nil {
		t.Fatalf("handle: %v", err)
	}
	return resp
}

func avS(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func avN(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
func avB(v []byte) types.AttributeValue { return &types.AttributeValueMemberB{Value: v} }

// posBytes is a position as processor.EncodePosition documents it, built here with math/big.
func posBytes(shard, seq string, sub uint32) []byte {
	n, ok := new(big.Int).SetString(seq, 10)
	if !ok {
		panic("posBytes: " + seq)
	}
	mag := n.Bytes()
	out := append([]byte{byte(len(shard))}, shard...)
	out = append(out, byte(len(mag)))
	out = append(out, mag...)
	return binary.BigEndian.AppendUint32(out, sub)
}

// TestIntegrationConditionalFence checks the conditions of ConditionalWrites and InsertOnly against dynalite: that
// it evaluates begins_with and <= on binary positions as DynamoDB does (byte-wise), and attribute_not_exists on the
// partition key. Under the default event-id key the written items carry no position (verified) or an unverified
// one (insert-only); the items already there come in every format: with a position, without one (this version's,
// or one written before positions existed, with only _kinesisSequenceNumber), unverified.
func TestIntegrationConditionalFence(t *testing.T) {
	const other = "shardId-000000000007"
	type pre struct {
		shard, seq string // no shard: an item without a position
		unverified bool   // the position is marked unverified (written insert-only)
		metaSeq    string // _kinesisSequenceNumber, as earlier versions wrote it
	}
	tests := []struct {
		name        string
		opts        func(*processor.Options)
		existing    map[int]pre // record index -> the item its key holds before the batch
		wantKept    []int       // records whose key still holds the old item
		wantFailure int         // index of the record reported, -1 for none
		unverified  bool        // the batch's items carry unverified positions
	}{
		{
			name: "conditional writes",
			opts: func(o *processor.Options) { o.ConditionalWrites = true },
			existing: map[int]pre{
				0: {shard: benchShard, seq: buildSeq(40)},      // later record of the shard: superseded
				1: {shard: benchShard, seq: buildSeq(0)},       // earlier: overwritten
				2: {shard: benchShard, seq: buildSeq(2)},       // itself: rewritten
				3: {shard: other, seq: "1"},                    // another shard: superseded
				4: {},                                          // no position: overwritten
				5: {shard: benchShard, seq: buildSeq(5) + "0"}, // longer, so later, though lexically smaller than its own
				6: {shard: benchShard, seq: "9"},               // shorter, so earlier, though lexically larger
				7: {shard: "s", seq: "1"},                      // another shard whose positions compare lower: superseded
				// Unverified (insert-only) items claiming a later record of the shard, or another shard: replaced.
				8: {shard: benchShard, seq: buildSeq(90), unverified: true},
				9: {shard: other, seq: "1", unverified: true},
				// An item of versions before positions, claiming a far-future sequence number in its metadata.
				10: {metaSeq: buildSeq(99) + "9"},
				// An item of the previous version: its own position and the old metadata.
				11: {shard: benchShard, seq: buildSeq(11), metaSeq: buildSeq(11)},
			},
			wantKept:    []int{0, 3, 5, 7},
			wantFailure: -1,
		},
		{
			name: "insert only",
			opts: func(o *processor.Options) { o.InsertOnly = true },
			existing: map[int]pre{
				1: {shard: benchShard, seq: buildSeq(1)},                   // itself (verified): a rerun, stored
				2: {shard: benchShard, seq: buildSeq(0)},                   // another record: refused
				3: {},                                                      // no position: under an event-id key, its own item: a rerun
				4: {metaSeq: buildSeq(4)},                                  // an item of versions before positions: its own, a rerun
				5: {shard: benchShard, seq: buildSeq(5), unverified: true}, // its own unverified item: a rerun
			},
			wantKept:    []int{1, 2, 3, 4, 5},
			wantFailure: 2,
			unverified:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			endpoint, db, table, errorTable := dynaliteTables(t)
			ev := buildEvent(samplePayloads(12, 5)...)
			ctx := context.Background()
			for i, e := range tt.existing {
				it := processor.Item{"id": avS(ev.Records[i].EventID), "old": avS("yes")}
				if e.shard != "" {
					pos := posBytes(e.shard, e.seq, 0)
					if e.unverified {
						pos = append([]byte{0}, pos...)
					}
					it[processor.AttrPosition] = avB(pos)
				}
				if e.metaSeq != "" {
					it[processor.AttrSequenceNumber] = avS(e.metaSeq)
				}
				if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: it}); err != nil {
					t.Fatal(err)
				}
			}
			p, err := processor.New(newSDKClient(endpoint), quiet(table, errorTable), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			resp := handle(t, p, ev)
			want := []events.KinesisBatchItemFailure{}
			if tt.wantFailure >= 0 {
				want = append(want, events.KinesisBatchItemFailure{ItemIdentifier: buildSeq(tt.wantFailure)})
			}
			if !reflect.DeepEqual(resp.BatchItemFailures, want) {
				t.Errorf("failures %v, want %v", resp.BatchItemFailures, want)
			}
			stored := scan(t, db, table)
			for i, rec := range ev.Records {
				it := stored[rec.EventID]
				_, old := it["old"]
				if kept := slices.Contains(tt.wantKept, i); old != kept {
					t.Errorf("record %d: old item kept %v, want %v (item %v)", i, old, kept, it)
				}
				if old {
					continue
				}
				// Written: verified items leave their position to their event-id key; unverified ones carry it marked.
				var want types.AttributeValue
				if tt.unverified {
					want = avB(append([]byte{0}, posBytes(benchShard, buildSeq(i), 0)...))
				}
				if got := it[processor.AttrPosition]; !reflect.DeepEqual(got, want) {
					t.Errorf("record %d: position %v, want %v", i, got, want)
				}
				if _, ok := it[processor.AttrSequenceNumber]; ok {
					t.Errorf("record %d: the old item's metadata survived the write: %v", i, it)
				}
			}
		})
	}
}

// TestIntegrationWriteAndReplay writes a batch to dynalite and replays it, with the default metadata (the arrival
// time) and with every metadata attribute: the sample item read back holds exactly the payload's attributes, the
// key and the metadata asked for (no position: its event-id key names it); a replay rewrites the same items, only
// the processing time moving.
func TestIntegrationWriteAndReplay(t *testing.T) {
	tests := []struct {
		name     string
		metadata []string
		want     func(ev events.KinesisEvent, at time.Time) processor.Item // the sample item's metadata attributes
	}{
		{name: "default metadata", want: func(events.KinesisEvent, time.Time) processor.Item {
			return processor.Item{"_kinesisArrivalTime": avS(benchArrival().Format(time.RFC3339Nano))}
		}},
		{name: "every metadata attribute", metadata: processor.AllMetadata(), want: func(ev events.KinesisEvent, at time.Time) processor.Item {
			return processor.Item{
				"_kinesisSequenceNumber": avS(buildSeq(0)),
				"_kinesisPartitionKey":   avS(ev.Records[0].Kinesis.PartitionKey),
				"_kinesisArrivalTime":    avS(benchArrival().Format(time.RFC3339Nano)),
				"_processedAt":           avS(at.Format(time.RFC3339Nano)),
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			endpoint, db, table, errorTable := dynaliteTables(t)
			payloads := append([][]byte{[]byte(sampleJSON)}, samplePayloads(59, 10)...)
			ev := buildEvent(payloads...)
			first := time.Date(2024, 9, 14, 0, 0, 1, 500, time.UTC)
			withMeta := func(o *processor.Options) { o.Config.Metadata = tt.metadata }

			resp := handle(t, newProcessor(t, endpoint, table, errorTable, first, withMeta), ev)
			if len(resp.BatchItemFailures) != 0 {
				t.Fatalf("failures = %v, want none", resp.BatchItemFailures)
			}
			stored := scan(t, db, table)
			if len(stored) != len(payloads) {
				t.Fatalf("stored %d items, want %d", len(stored), len(payloads))
			}
			sampleID := ev.Records[0].EventID
			wantSample := processor.Item{
				"id":        avS(sampleID),
				"Timestamp": avS("2024-09-13T23:06:55.934081Z"),
				"Value":     avN("81"),
				"Category":  avS("C"),
			}
			for k, v := range tt.want(ev, first) {
				wantSample[k] = v
			}
			if got := stored[sampleID]; !reflect.DeepEqual(got, wantSample) {
				t.Errorf("sample item =\n%v\nwant\n%v", got, wantSample)
			}
			if n := len(scan(t, db, errorTable)); n != 0 {
				t.Errorf("error table holds %d items, want none", n)
			}

			// Replay the same batch later: same items, same values; only the processing time moves.
			second := first.Add(time.Hour)
			resp = handle(t, newProcessor(t, endpoint, table, errorTable, second, withMeta), ev)
			if len(resp.BatchItemFailures) != 0 {
				t.Fatalf("replay failures = %v, want none", resp.BatchItemFailures)
			}
			replayed := scan(t, db, table)
			if len(replayed) != len(stored) {
				t.Fatalf("after replay: %d items, want %d", len(replayed), len(stored))
			}
			_, processedAt := tt.want(ev, first)["_processedAt"]
			for id, before := range stored {
				after := replayed[id]
				if processedAt {
					if got, want := after["_processedAt"], avS(second.Format(time.RFC3339Nano)); !reflect.DeepEqual(got, want) {
						t.Errorf("%s: _processedAt = %v after replay, want %v", id, got, want)
					}
				}
				b, a := copyWithout(before, "_processedAt"), copyWithout(after, "_processedAt")
				if !reflect.DeepEqual(a, b) {
					t.Errorf("%s changed on replay:\nbefore %v\nafter  %v", id, b, a)
				}
			}
		})
	}
}

// TestIntegrationDefaultItemOverhead (issue 17): the AWS sample record's default item, written by the default
// processor and read back from dynalite, is at most 128 bytes beyond its payload's attributes by DynamoDB's size
// rules (the tests' own oracle, dynamosize_test.go), for the conditional and the plain write path, with the sample's
// own event id (a 56-digit sequence number) and an arrival time with milliseconds (the longest RFC 3339 form the
// processor writes).
func TestIntegrationDefaultItemOverhead(t *testing.T) {
	const (
		sampleSeq   = "49590338271490256608559692538361571095921575989136588898" // the AWS documentation's sample event
		sampleShard = "shardId-000000000000"
		maxOverhead = 128
	)
	for _, conditional := range []bool{false, true} {
		t.Run(fmt.Sprintf("conditional=%v", conditional), func(t *testing.T) {
			endpoint, db, table, errorTable := dynaliteTables(t)
			ev := events.KinesisEvent{Records: []events.KinesisEventRecord{{
				EventID: sampleShard + ":" + sampleSeq, EventSource: "aws:kinesis", EventName: "aws:kinesis:record",
				Kinesis: events.KinesisRecord{Data: []byte(sampleJSON), PartitionKey: "1", SequenceNumber: sampleSeq,
					ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: time.Date(2024, 9, 13, 23, 6, 56, 999000000, time.UTC)}},
			}}}
			p := newProcessor(t, endpoint, table, errorTable, time.Date(2024, 9, 14, 0, 0, 0, 0, time.UTC),
				func(o *processor.Options) { o.ConditionalWrites = conditional })
			if resp := handle(t, p, ev); len(resp.BatchItemFailures) != 0 {
				t.Fatalf("failures = %v", resp.BatchItemFailures)
			}
			it := scan(t, db, table)[ev.Records[0].EventID]
			if it == nil {
				t.Fatal("the item is not in the table")
			}
			var names []string
			for k := range it {
				names = append(names, k)
			}
			sort.Strings(names)
			if want := []string{"Category", "Timestamp", "Value", "_kinesisArrivalTime", "id"}; !slices.Equal(names, want) {
				t.Errorf("attributes %v, want %v", names, want)
			}
			payload := processor.Item{"Category": it["Category"], "Timestamp": it["Timestamp"], "Value": it["Value"]}
			size, attrs := processor.DynamoItemSize(it), processor.DynamoItemSize(payload)
			t.Logf("item %d bytes, payload attributes %d, overhead %d (id %d, _kinesisArrivalTime %d)", size, attrs, size-attrs,
				len("id")+processor.DynamoValueSize(it["id"]), len("_kinesisArrivalTime")+processor.DynamoValueSize(it["_kinesisArrivalTime"]))
			if size-attrs > maxOverhead {
				t.Errorf("overhead %d bytes, want at most %d", size-attrs, maxOverhead)
			}
			if attrs != 52 { // Category 8+1, Timestamp 9+27, Value 5+2: the figure for the sample's attributes
				t.Errorf("payload attributes %d bytes, want 52", attrs)
			}
		})
	}
}

func copyWithout(it processor.Item, attr string) processor.Item {
	out := make(processor.Item, len(it))
	for k, v := range it {
		if k != attr {
			out[k] = v
		}
	}
	return out
}

func TestIntegrationMalformedRecords(t *testing.T) {
	endpoint, db, table, errorTable := dynaliteTables(t)
	tests := []struct {
		name       string
		payload    string
		wantReason string // a word the stored reason must contain, case-insensitively
	}{
		{"invalid JSON", `{"Value": 81,`, "json"},
		{"JSON null", `null`, "null"},
		{"JSON array", `[{"Value": 81}]`, "array"},
		{"bare string", `"C"`, "string"},
		{"invalid UTF-8", "{\"Category\": \"\xff\xfe\"}", "utf-8"},
		{"number past 38 digits", `{"Value": 123456789012345678901234567890123456789}`, "digits"},
		{"number out of range", `{"Value": 1E+126}`, "magnitude"},
		{"nesting past 32 levels", strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40), "nested"},
		{"empty attribute name", `{"": 1}`, "empty"},
		{"item over 400 KB", `{"Note": "` + strings.Repeat("x", 410*1024) + `"}`, "bytes"},
	}
	payloads := [][]byte{[]byte(sampleJSON)}
	for _, tt := range tests {
		payloads = append(payloads, []byte(tt.payload))
	}
	payloads = append(payloads, []byte(`{"Category": "last"}`))
	ev := buildEvent(payloads...)

	resp := handle(t, newProcessor(t, endpoint, table, errorTable, time.Date(2024, 9, 14, 0, 0, 0, 0, time.UTC)), ev)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures = %v, want none: malformed records are permanent failures", resp.BatchItemFailures)
	}
	stored := scan(t, db, table)
	wantStored := []string{ev.Records[0].EventID, ev.Records[len(ev.Records)-1].EventID}
	if got := sortedKeys(stored); !reflect.DeepEqual(got, sortedStrings(wantStored)) {
		t.Errorf("data table ids = %v, want %v", got, wantStored)
	}
	errs := scan(t, db, errorTable)
	if len(errs) != len(tests) {
		t.Errorf("error table holds %d items, want %d", len(errs), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := ev.Records[i+1]
			it, ok := errs[rec.EventID]
			if !ok {
				t.Fatalf("no error item for %s", rec.EventID)
			}
			for attr, want := range map[string]types.AttributeValue{
				processor.ErrorAttrSequenceNumber: avS(rec.Kinesis.SequenceNumber),
				processor.ErrorAttrShardID:        avS(benchShard),
				processor.ErrorAttrPartitionKey:   avS(rec.Kinesis.PartitionKey),
				processor.ErrorAttrPayloadSize:    avN(fmt.Sprint(len(tt.payload))),
			} {
				if got := it[attr]; !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %v, want %v", attr, got, want)
				}
			}
			enc, _ := it[processor.ErrorAttrPayloadEncoding].(*types.AttributeValueMemberS)
			payload, _ := it[processor.ErrorAttrPayload].(*types.AttributeValueMemberB)
			switch {
			case enc == nil || payload == nil:
				t.Errorf("payload or encoding missing: %v", it)
			case enc.Value == processor.PayloadEncodingRaw && string(payload.Value) != tt.payload:
				t.Errorf("raw payload = %.80q, want %.80q", payload.Value, tt.payload)
			case enc.Value != processor.PayloadEncodingRaw && len(tt.payload) <= processor.MaxErrorPayload:
				t.Errorf("payload of %d bytes stored as %s, want raw", len(tt.payload), enc.Value)
			}
			reason, _ := it[processor.ErrorAttrReason].(*types.AttributeValueMemberS)
			if reason == nil || !strings.Contains(strings.ToLower(reason.Value), tt.wantReason) {
				t.Errorf("reason = %v, want one mentioning %q", it[processor.ErrorAttrReason], tt.wantReason)
			}
		})
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedStrings(ss []string) []string {
	out := append([]string(nil), ss...)
	sort.Strings(out)
	return out
}

// TestIntegrationFaults puts the stand-in in front of dynalite and injects faults into the processor's writes:
// every record must still end stored (valid ones in the data table, malformed ones in the error table) or be
// reported for retry, with every record before the reported sequence number stored.
func TestIntegrationFaults(t *testing.T) {
	writes := []string{dynamostandin.OpBatchWriteItem, dynamostandin.OpPutItem}
	tests := []struct {
		name  string
		opts  dynamostandin.Options
		check func(t *testing.T, st dynamostandin.Stats)
	}{
		{
			name: "throttling and unprocessed items at 20%",
			opts: dynamostandin.Options{ThrottleRate: 0.2, UnprocessedRate: 0.2, UnprocessedFraction: 0.5, FaultOperations: writes},
			check: func(t *testing.T, st dynamostandin.Stats) {
				if st.Throttled == 0 || st.PartialBatches == 0 {
					t.Errorf("no faults injected: %+v", st)
				}
			},
		},
		{
			name: "dropped connections after the write, with latency jitter",
			opts: dynamostandin.Options{DropRate: 0.15, DropAfterApply: true, LatencyJitter: 3 * time.Millisecond, FaultOperations: writes},
			check: func(t *testing.T, st dynamostandin.Stats) {
				if st.Dropped == 0 {
					t.Errorf("no connection dropped: %+v", st)
				}
			},
		},
		{
			name: "spurious validation errors on batches are isolated item by item",
			opts: dynamostandin.Options{ValidationRate: 0.3, FaultOperations: []string{dynamostandin.OpBatchWriteItem}},
			check: func(t *testing.T, st dynamostandin.Stats) {
				if st.ValidationErrors == 0 || st.Operations[dynamostandin.OpPutItem] == 0 {
					t.Errorf("no validation error, or no one-by-one writes: %+v", st)
				}
			},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			endpoint, db, table, errorTable := dynaliteTables(t)
			tt.opts.Upstream = endpoint
			tt.opts.Seed = uint64(i + 1)
			standin := dynamostandin.New(tt.opts)
			t.Cleanup(standin.Close)

			const valid = 300
			payloads := samplePayloads(valid, 20)
			malformed := map[int]bool{}
			for j := 7; j < valid; j += 31 {
				payloads[j] = []byte(`{"broken": `)
				malformed[j] = true
			}
			ev := buildEvent(payloads...)
			resp := handle(t, newProcessor(t, standin.URL(), table, errorTable, time.Now()), ev)

			reported := ""
			if len(resp.BatchItemFailures) > 0 {
				reported = resp.BatchItemFailures[0].ItemIdentifier
				if len(resp.BatchItemFailures) != 1 || reported == "" {
					t.Fatalf("failures = %v, want at most one, with a sequence number", resp.BatchItemFailures)
				}
			}
			stored, errs := scan(t, db, table), scan(t, db, errorTable)
			for j, rec := range ev.Records {
				_, inData := stored[rec.EventID]
				_, inErrors := errs[rec.EventID]
				switch {
				case malformed[j] && inData, !malformed[j] && inErrors:
					t.Errorf("record %d (malformed %v) landed in the wrong table", j, malformed[j])
				case inData || inErrors:
				case reported == "" || rec.Kinesis.SequenceNumber < reported:
					t.Errorf("record %d (%s) is neither stored nor reported (reported %q)", j, rec.Kinesis.SequenceNumber, reported)
				}
			}
			if reported != "" {
				t.Errorf("reported %s for retry although the invocation had two minutes", reported)
			}
			if got, want := len(stored)+len(errs), valid; got != want {
				t.Errorf("stored %d + %d items, want %d", len(stored), len(errs), want)
			}
			tt.check(t, standin.Stats())
		})
	}
}
