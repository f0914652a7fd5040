package replay_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/replay"
)

// otherAccountStream is attackStream seen from another account, as Kinesis answers there: a request that names the
// stream by name only resolves the name in the caller's account, where no such stream exists; only the ARN (or a
// NextToken, which names no stream) reaches it.
type otherAccountStream struct {
	attackStream
	calls []string
}

func (s *otherAccountStream) check(op string, name, arn *string) error {
	s.calls = append(s.calls, op)
	if aws.ToString(arn) != attackARN {
		return &ktypes.ResourceNotFoundException{Message: aws.String(fmt.Sprintf("%s: stream %s under account 999999999999 not found", op, aws.ToString(name)))}
	}
	return nil
}

func (s *otherAccountStream) DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, o ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	if err := s.check("DescribeStreamSummary", in.StreamName, in.StreamARN); err != nil {
		return nil, err
	}
	return s.attackStream.DescribeStreamSummary(ctx, in, o...)
}

func (s *otherAccountStream) ListShards(ctx context.Context, in *kinesis.ListShardsInput, o ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	if in.NextToken == nil {
		if err := s.check("ListShards", in.StreamName, in.StreamARN); err != nil {
			return nil, err
		}
	}
	return s.attackStream.ListShards(ctx, in, o...)
}

func (s *otherAccountStream) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, o ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	if err := s.check("GetShardIterator", in.StreamName, in.StreamARN); err != nil {
		return nil, err
	}
	return s.attackStream.GetShardIterator(ctx, in, o...)
}

// TestReplayStreamInAnotherAccount: the pinned stream lives in another account (a cross-account role): every call
// that names the stream must carry its ARN, or the replay reads nothing.
func TestReplayStreamInAnotherAccount(t *testing.T) {
	srv := dynamostandin.New(dynamostandin.Options{})
	defer srv.Close()
	db := dynamodb.NewFromConfig(emulators.AWSConfig(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(srv.URL()) })
	now := time.Now()
	ks := &otherAccountStream{attackStream: attackStream{recs: []ktypes.Record{{Data: []byte(`{"a":1}`), PartitionKey: aws.String("k"),
		SequenceNumber: aws.String("49600000000000000000000000000000000000000000000000000001"), ApproximateArrivalTimestamp: aws.Time(now.Add(-time.Minute))}}}}
	r, err := replay.New(replay.Clients{DB: db, Kinesis: ks}, func(o *replay.Options) {
		o.StreamARN, o.Since, o.TableName = attackARN, now.Add(-time.Hour), "data"
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sum, err := r.Run(ctx)
	if err != nil {
		t.Fatalf("run: %v (calls %v)", err, ks.calls)
	}
	if items := srv.Items("data"); !sum.Complete() || len(items) != 1 {
		t.Errorf("complete %v, %d items stored (want 1); calls %v; shards %+v", sum.Complete(), len(items), ks.calls, sum.Shards)
	}
}
