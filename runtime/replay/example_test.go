package replay_test

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/replay"
)

// Replay the records that arrived between 21:00 and 23:00 through the fixed configuration, a dry run first.
// (Compiled, not run: it needs a stream and tables.)
func Example() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		panic(err)
	}
	fixed, err := processor.ReadConfigFile("pipeline.json")
	if err != nil {
		panic(err)
	}
	for _, dryRun := range []bool{true, false} {
		r, err := replay.New(replay.Clients{DB: processor.NewDynamoDBClient(cfg), Kinesis: kinesis.NewFromConfig(cfg)}, func(o *replay.Options) {
			o.StreamARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/ingest"
			o.Since = time.Date(2024, 9, 13, 21, 0, 0, 0, time.UTC)
			o.Until = time.Date(2024, 9, 13, 23, 0, 0, 0, time.UTC)
			o.TableName, o.ErrorTableName, o.Config = "ingest-data", "ingest-errors", fixed
			o.DryRun, o.Rate = dryRun, 500
		})
		if err != nil {
			panic(err)
		}
		sum, err := r.Run(ctx)
		if err != nil {
			panic(err)
		}
		fmt.Printf("dry run %v: %d read, %d written, %d superseded, complete %v\n",
			dryRun, sum.Records.Read, sum.Records.Written, sum.Records.Superseded, sum.Complete())
	}
}
