package redrive_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

const fakeStreamARN = "arn:aws:kinesis:us-east-1:000000000000:stream/s"

// fakeKinesis is one shard whose records have sequence numbers 1..n. Its iterators are the sequence number to read
// from. GetRecords returns at most two records a page. After expireAfter successful GetRecords calls, the next one
// fails with ExpiredIteratorException and the records below horizon are trimmed: an iterator AFTER_SEQUENCE_NUMBER a
// trimmed record then starts at the first record still there, as Kinesis does from the trim horizon.
type fakeKinesis struct {
	mu          sync.Mutex
	n           int
	expireAfter int // 0: never
	horizon     int // the first record kept after the expiry; 0: nothing trimmed
	throttle    int // the first this many calls (of either kind) fail with ProvisionedThroughputExceededException
	calls       int
	iterators   int // GetShardIterator calls answered
	throttled   int
	expired     bool
	trimmedTo   int
	renewals    []string
}

// throttled reports whether this call is throttled. The caller holds k.mu.
func (k *fakeKinesis) throttledCall() bool {
	if k.throttled < k.throttle {
		k.throttled++
		return true
	}
	return false
}

func (k *fakeKinesis) GetShardIterator(_ context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.throttledCall() {
		return nil, &ktypes.ProvisionedThroughputExceededException{Message: aws.String("rate exceeded for shard")}
	}
	k.iterators++
	seq, err := strconv.Atoi(aws.ToString(in.StartingSequenceNumber))
	if err != nil || seq < 1 || seq > k.n {
		return nil, &ktypes.InvalidArgumentException{Message: aws.String("bad sequence number")}
	}
	if in.ShardIteratorType == ktypes.ShardIteratorTypeAfterSequenceNumber {
		seq++
		k.renewals = append(k.renewals, aws.ToString(in.StartingSequenceNumber))
	}
	seq = max(seq, k.trimmedTo)
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(strconv.Itoa(seq))}, nil
}

func (k *fakeKinesis) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.throttledCall() {
		return nil, &ktypes.ProvisionedThroughputExceededException{Message: aws.String("rate exceeded for shard")}
	}
	if k.expireAfter > 0 && k.calls == k.expireAfter && !k.expired {
		k.expired = true
		k.trimmedTo = k.horizon
		return nil, &ktypes.ExpiredIteratorException{Message: aws.String("iterator expired")}
	}
	k.calls++
	from, _ := strconv.Atoi(aws.ToString(in.ShardIterator))
	from = max(from, k.trimmedTo)
	out := &kinesis.GetRecordsOutput{MillisBehindLatest: aws.Int64(0)}
	next := from
	for seq := from; seq <= k.n && seq < from+2; seq++ {
		out.Records = append(out.Records, ktypes.Record{
			SequenceNumber: aws.String(strconv.Itoa(seq)), PartitionKey: aws.String("pk"),
			Data: []byte(fmt.Sprintf(`{"n":%d}`, seq)), ApproximateArrivalTimestamp: aws.Time(time.Unix(1736000000, 0)),
		})
		next = seq + 1
	}
	out.NextShardIterator = aws.String(strconv.Itoa(next))
	return out, nil
}

// fakeSQS holds messages in memory; each is received once.
type fakeSQS struct {
	mu       sync.Mutex
	bodies   map[string]string
	received map[string]bool
	deleted  []string
}

func newFakeSQS(bodies ...string) *fakeSQS {
	q := &fakeSQS{bodies: map[string]string{}, received: map[string]bool{}}
	for i, b := range bodies {
		q.bodies[fmt.Sprint("m", i)] = b
	}
	return q
}

func (q *fakeSQS) ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := &sqs.ReceiveMessageOutput{}
	for id, b := range q.bodies {
		if !q.received[id] {
			q.received[id] = true
			out.Messages = append(out.Messages, sqstypes.Message{MessageId: aws.String(id), ReceiptHandle: aws.String(id), Body: aws.String(b)})
		}
	}
	return out, nil
}

func (q *fakeSQS) DeleteMessage(_ context.Context, in *sqs.DeleteMessageInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	id := aws.ToString(in.ReceiptHandle)
	if _, ok := q.bodies[id]; !ok {
		return nil, errors.New("no such message")
	}
	delete(q.bodies, id)
	q.deleted = append(q.deleted, id)
	return &sqs.DeleteMessageOutput{}, nil
}

func (q *fakeSQS) ChangeMessageVisibility(context.Context, *sqs.ChangeMessageVisibilityInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

func rangeBody(start, end, batchSize int) string {
	return rangeBodyOf(fakeStreamARN, start, end, batchSize)
}

func rangeBodyOf(streamARN string, start, end, batchSize int) string {
	return fmt.Sprintf(`{"requestContext":{"requestId":"r","functionArn":"arn:aws:lambda:us-east-1:000000000000:function:f","condition":"RetryAttemptsExhausted","approximateInvokeCount":3},
"responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"},"version":"1.0","timestamp":"2025-01-02T03:04:05.678Z",
"KinesisBatchInfo":{"shardId":"shardId-000000000000","startSequenceNumber":"%d","endSequenceNumber":"%d","batchSize":%d,"streamArn":%q}}`,
		start, end, batchSize, streamARN)
}

// TestDLQCountsTheRange: a message is deleted only when the records read within its range are exactly the ones the
// on-failure record names; an iterator that expires mid-range while records are trimmed leaves a silent gap that only
// the count reveals. A message naming another stream than the pinned one is left where it is, its range never read;
// a throttled read backs off and goes on.
func TestDLQCountsTheRange(t *testing.T) {
	tests := []struct {
		name          string
		kinesis       *fakeKinesis
		body          string
		want          redrive.Outcome
		wantWritten   int
		wantReason    string
		wantIterators int // GetShardIterator calls; -1: any
	}{
		{"iterator expires mid-range, nothing trimmed", &fakeKinesis{n: 10, expireAfter: 1}, rangeBody(1, 8, 8), redrive.OutcomeRecovered, 8, "", 2},
		// Records 1 and 2 are read, the iterator expires, records 1..4 are trimmed: the renewed iterator after 2
		// starts at 5, and 3 and 4 are never read.
		{"iterator expires mid-range, next records trimmed", &fakeKinesis{n: 10, expireAfter: 1, horizon: 5}, rangeBody(1, 8, 8), redrive.OutcomeExpired, 6, "6 of the range's 8 records read", 2},
		// The read stops at the first record beyond the count: the rest of the shard is not read.
		{"more records than the batch size", &fakeKinesis{n: 10}, rangeBody(1, 8, 5), redrive.OutcomeFailed, 5, "more than the 5 records", 1},
		{"no batch size", &fakeKinesis{n: 10}, rangeBody(1, 8, 0), redrive.OutcomeFailed, 8, "no batchSize", 1},
		{"whole range readable", &fakeKinesis{n: 10}, rangeBody(3, 7, 5), redrive.OutcomeRecovered, 5, "", 1},
		{"throttled reads back off", &fakeKinesis{n: 10, throttle: 3}, rangeBody(3, 7, 5), redrive.OutcomeRecovered, 5, "", 1},
		{"another account's stream", &fakeKinesis{n: 10}, rangeBodyOf("arn:aws:kinesis:us-east-1:999999999999:stream/s", 3, 7, 5), redrive.OutcomeForeignStream, 0, "names stream arn:aws:kinesis:us-east-1:999999999999:stream/s", 0},
		{"another region's stream", &fakeKinesis{n: 10}, rangeBodyOf("arn:aws:kinesis:eu-west-1:000000000000:stream/s", 3, 7, 5), redrive.OutcomeForeignStream, 0, "not the pinned stream " + fakeStreamARN, 0},
		{"another partition's stream", &fakeKinesis{n: 10}, rangeBodyOf("arn:aws-cn:kinesis:us-east-1:000000000000:stream/s", 3, 7, 5), redrive.OutcomeForeignStream, 0, "names stream", 0},
		{"another stream of the account", &fakeKinesis{n: 10}, rangeBodyOf("arn:aws:kinesis:us-east-1:000000000000:stream/s2", 3, 7, 5), redrive.OutcomeForeignStream, 0, "names stream", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := &memDB{}
			q := newFakeSQS(tt.body)
			r, err := redrive.New(redrive.Clients{DB: db, Kinesis: tt.kinesis, SQS: q}, func(o *redrive.Options) {
				o.TableName, o.ErrorTableName, o.StreamARN = "data", "errors", fakeStreamARN
			})
			if err != nil {
				t.Fatal(err)
			}
			sum, err := r.DLQ(context.Background(), redrive.DLQInput{QueueURL: "q"})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Sources[tt.want] != 1 || sum.Records.Written != tt.wantWritten || db.written != tt.wantWritten {
				t.Fatalf("summary = %+v (%d items written), want one %s source and %d records written", sum, db.written, tt.want, tt.wantWritten)
			}
			if tt.wantIterators >= 0 && tt.kinesis.iterators != tt.wantIterators {
				t.Errorf("%d GetShardIterator calls, want %d", tt.kinesis.iterators, tt.wantIterators)
			}
			if tt.kinesis.throttled != tt.kinesis.throttle {
				t.Errorf("%d calls throttled, want %d", tt.kinesis.throttled, tt.kinesis.throttle)
			}
			if tt.want == redrive.OutcomeRecovered {
				if len(q.deleted) != 1 {
					t.Errorf("deleted %v, want the message", q.deleted)
				}
				return
			}
			if len(q.deleted) != 0 || sum.Removed != 0 {
				t.Errorf("deleted %v, want the message kept", q.deleted)
			}
			if res := sum.Unrecoverable[0]; !strings.Contains(res.Reason, tt.wantReason) {
				t.Errorf("reason = %q, want one containing %q", res.Reason, tt.wantReason)
			}
		})
	}
}

// TestPinRequired: DLQ and S3 refuse to run without the pipeline's stream; New rejects an ARN that is not a
// Kinesis stream's.
func TestPinRequired(t *testing.T) {
	c := redrive.Clients{DB: &memDB{}, Kinesis: &fakeKinesis{}, SQS: newFakeSQS(), S3: nopS3{}}
	r, err := redrive.New(c, func(o *redrive.Options) { o.TableName = "data" })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.DLQ(context.Background(), redrive.DLQInput{QueueURL: "q"}); err == nil || !strings.Contains(err.Error(), "stream ARN is required") {
		t.Errorf("DLQ without a stream: %v", err)
	}
	if _, err := r.S3(context.Background(), redrive.S3Input{Bucket: "b"}); err == nil || !strings.Contains(err.Error(), "stream ARN is required") {
		t.Errorf("S3 without a stream: %v", err)
	}
	for _, bad := range []string{"stream/s", "arn:aws:sqs:us-east-1:000000000000:q", "arn:aws:kinesis:us-east-1::stream/s"} {
		if _, err := redrive.New(c, func(o *redrive.Options) { o.TableName, o.StreamARN = "data", bad }); err == nil || !strings.Contains(err.Error(), "stream") {
			t.Errorf("New with stream %q: %v", bad, err)
		}
	}
}

// nopS3 is a bucket that must not be read.
type nopS3 struct{}

func (nopS3) ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	return nil, errors.New("nopS3: not to be listed")
}

func (nopS3) GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	return nil, errors.New("nopS3: not to be read")
}

func (nopS3) DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	return nil, errors.New("nopS3: not to be deleted")
}
