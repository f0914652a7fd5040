package localrun_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/localrun"
)

// fakeKinesis is one open shard of one stream in memory, answering the calls the runner makes as Kinesis does:
// iterators by position, GetRecords up to its limit, always a next iterator (the shard is open).
type fakeKinesis struct {
	stream string
	shard  string
	mu     sync.Mutex
	recs   []ktypes.Record
}

var _ localrun.Kinesis = (*fakeKinesis)(nil)

// fakeBase is the approximate arrival time of the fake's first record; record i arrives i ms later.
var fakeBase = time.Date(2025, 11, 25, 19, 3, 18, 0, time.UTC)

// newFakeKinesis holds one record per payload, with sequence numbers seqNumber(i).
func newFakeKinesis(payloads []string) *fakeKinesis {
	f := &fakeKinesis{stream: "s", shard: "shardId-000000000000"}
	for i, p := range payloads {
		f.recs = append(f.recs, ktypes.Record{
			Data:                        []byte(p),
			PartitionKey:                aws.String(fmt.Sprintf("pk-%d", i)),
			SequenceNumber:              aws.String(seqNumber(i)),
			ApproximateArrivalTimestamp: aws.Time(fakeBase.Add(time.Duration(i) * time.Millisecond)),
		})
	}
	return f
}

// seqNumber is the sequence number of the fake's record i: 56 digits, as Kinesis gives.
func seqNumber(i int) string { return fmt.Sprintf("4959%052d", i+1) }

func (f *fakeKinesis) ListShards(_ context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	if in.NextToken == nil && aws.ToString(in.StreamName) != f.stream {
		return nil, &ktypes.ResourceNotFoundException{Message: aws.String("no such stream")}
	}
	return &kinesis.ListShardsOutput{Shards: []ktypes.Shard{{ShardId: aws.String(f.shard)}}}, nil
}

func (f *fakeKinesis) GetShardIterator(_ context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if aws.ToString(in.StreamName) != f.stream || aws.ToString(in.ShardId) != f.shard {
		return nil, &ktypes.ResourceNotFoundException{Message: aws.String("no such shard")}
	}
	pos := 0
	switch in.ShardIteratorType {
	case ktypes.ShardIteratorTypeTrimHorizon:
	case ktypes.ShardIteratorTypeLatest:
		pos = len(f.recs)
	case ktypes.ShardIteratorTypeAfterSequenceNumber, ktypes.ShardIteratorTypeAtSequenceNumber:
		pos = -1
		for i, r := range f.recs {
			if *r.SequenceNumber == aws.ToString(in.StartingSequenceNumber) {
				pos = i
			}
		}
		if pos < 0 {
			return nil, &ktypes.InvalidArgumentException{Message: aws.String("unknown sequence number")}
		}
		if in.ShardIteratorType == ktypes.ShardIteratorTypeAfterSequenceNumber {
			pos++
		}
	case ktypes.ShardIteratorTypeAtTimestamp:
		pos = len(f.recs)
		for i, r := range f.recs {
			if !r.ApproximateArrivalTimestamp.Before(aws.ToTime(in.Timestamp)) {
				pos = i
				break
			}
		}
	default:
		return nil, &ktypes.InvalidArgumentException{Message: aws.String("bad iterator type")}
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(f.shard + "/" + strconv.Itoa(pos))}, nil
}

func (f *fakeKinesis) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	shard, p, ok := strings.Cut(aws.ToString(in.ShardIterator), "/")
	pos, err := strconv.Atoi(p)
	if !ok || err != nil || shard != f.shard || pos < 0 || pos > len(f.recs) {
		return nil, &ktypes.InvalidArgumentException{Message: aws.String("bad iterator")}
	}
	limit := int(aws.ToInt32(in.Limit))
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	end := min(pos+limit, len(f.recs))
	return &kinesis.GetRecordsOutput{
		Records:            append([]ktypes.Record(nil), f.recs[pos:end]...),
		NextShardIterator:  aws.String(f.shard + "/" + strconv.Itoa(end)),
		MillisBehindLatest: aws.Int64(0),
	}, nil
}

// script answers an invocation: the n-th (from 0), carrying the records of these indexes. It returns the raw
// response body, or an error (a function error).
type script func(n int, idx []int) (string, error)

// scripted is a function that records what each invocation carried (as record indexes) and answers by script.
type scripted struct {
	mu     sync.Mutex
	calls  [][]int
	script script
	before func(n int) // runs before the script (tests advance their clock here)
}

func (s *scripted) Invoke(_ context.Context, payload []byte) ([]byte, error) {
	var ev events.KinesisEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, fmt.Errorf("event: %w", err)
	}
	var idx []int
	for _, r := range ev.Records {
		i, err := strconv.Atoi(strings.TrimPrefix(r.Kinesis.SequenceNumber, "4959"))
		if err != nil {
			return nil, fmt.Errorf("sequence number %q: %w", r.Kinesis.SequenceNumber, err)
		}
		idx = append(idx, i-1)
	}
	s.mu.Lock()
	n := len(s.calls)
	s.calls = append(s.calls, idx)
	s.mu.Unlock()
	if s.before != nil {
		s.before(n)
	}
	if s.script == nil {
		return nil, nil
	}
	out, err := s.script(n, idx)
	if err != nil {
		return nil, &localrun.FunctionError{Type: "Error", Message: err.Error()}
	}
	return []byte(out), nil
}

func (s *scripted) snapshot() [][]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]int(nil), s.calls...)
}

// clock is a settable time for the runner's Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// report answers with batch item failures for the records of these indexes, as the processor writes them.
func report(idx ...int) string {
	var items []string
	for _, i := range idx {
		items = append(items, fmt.Sprintf(`{"itemIdentifier":%q}`, seqNumber(i)))
	}
	return `{"batchItemFailures":[` + strings.Join(items, ",") + `]}`
}

// rng returns the indexes from..to inclusive.
func rng(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// drainFake drains r within a bound.
func drainFake(t *testing.T, r *localrun.Runner) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Drain(ctx); err != nil {
		t.Fatalf("drain: %v (stats %+v)", err, r.Stats())
	}
}
