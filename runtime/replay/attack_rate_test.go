package replay_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/replay"
)

const attackARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/attack"

// attackStream is a one-shard stream that checks GetRecords' Limit as Kinesis does (1..10000) and serves its
// records on the first page, then an empty page at the tip.
type attackStream struct {
	recs []ktypes.Record

	mu     sync.Mutex
	limits []int32
}

func (s *attackStream) DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	return &kinesis.DescribeStreamSummaryOutput{StreamDescriptionSummary: &ktypes.StreamDescriptionSummary{RetentionPeriodHours: aws.Int32(24)}}, nil
}

func (s *attackStream) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return &kinesis.ListShardsOutput{Shards: []ktypes.Shard{{ShardId: aws.String("shardId-000000000000"),
		SequenceNumberRange: &ktypes.SequenceNumberRange{StartingSequenceNumber: aws.String("1")}}}}, nil
}

func (s *attackStream) GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String("page-0")}, nil
}

func (s *attackStream) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	s.mu.Lock()
	s.limits = append(s.limits, aws.ToInt32(in.Limit))
	s.mu.Unlock()
	if in.Limit != nil && (*in.Limit < 1 || *in.Limit > 10000) {
		return nil, &smithy.GenericAPIError{Code: "ValidationException",
			Message: fmt.Sprintf("1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint", *in.Limit)}
	}
	if aws.ToString(in.ShardIterator) == "page-0" {
		return &kinesis.GetRecordsOutput{Records: s.recs, NextShardIterator: aws.String("page-1"), MillisBehindLatest: aws.Int64(0)}, nil
	}
	return &kinesis.GetRecordsOutput{NextShardIterator: aws.String("page-1"), MillisBehindLatest: aws.Int64(0)}, nil
}

// TestAttackHugeRateStillReads: a --rate larger than GetRecords' largest Limit means no effective limit; it must
// never turn into a Limit Kinesis rejects (a float converted to int32 out of range), leaving every shard unread.
func TestAttackHugeRateStillReads(t *testing.T) {
	for _, rate := range []float64{10000, 1e5, 2147483647, 3e9, 1e10, 1e300} {
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			srv := dynamostandin.New(dynamostandin.Options{})
			defer srv.Close()
			db := dynamodb.NewFromConfig(emulators.AWSConfig(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(srv.URL()) })
			now := time.Now()
			ks := &attackStream{recs: []ktypes.Record{{Data: []byte(`{"a":1}`), PartitionKey: aws.String("k"),
				SequenceNumber: aws.String("49600000000000000000000000000000000000000000000000000001"), ApproximateArrivalTimestamp: aws.Time(now.Add(-time.Minute))}}}
			r, err := replay.New(replay.Clients{DB: db, Kinesis: ks}, func(o *replay.Options) {
				o.StreamARN, o.Since, o.TableName, o.Rate = attackARN, now.Add(-time.Hour), "data", rate
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			sum, err := r.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ks.mu.Lock()
			limits := append([]int32(nil), ks.limits...)
			ks.mu.Unlock()
			items := srv.Items("data")
			if !sum.Complete() || len(items) != 1 {
				t.Errorf("rate %v: complete %v, %d items stored (want 1); GetRecords limits %v; shards %+v", rate, sum.Complete(), len(items), limits, sum.Shards)
			}
		})
	}
}

// TestAttackNonFiniteRateIsUsage: a rate that is not a number or infinite is bad usage, not a run that silently
// has no limit (NaN) or fails every read (+Inf).
func TestAttackNonFiniteRateIsUsage(t *testing.T) {
	for _, rate := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			srv := dynamostandin.New(dynamostandin.Options{})
			defer srv.Close()
			db := dynamodb.NewFromConfig(emulators.AWSConfig(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(srv.URL()) })
			_, err := replay.New(replay.Clients{DB: db, Kinesis: &attackStream{}}, func(o *replay.Options) {
				o.StreamARN, o.Since, o.TableName, o.Rate = attackARN, time.Now().Add(-time.Hour), "data", rate
			})
			var ue *replay.UsageError
			if !errors.As(err, &ue) {
				t.Errorf("rate %v: New returned %v, want a *UsageError", rate, err)
			}
		})
	}
}
