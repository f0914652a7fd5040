package cli

import (
	"context"
	"strings"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// LoadConfig reads the pipeline's configuration as the redrive command's --config does: "" gives the processor's
// default configuration; s3://BUCKET/KEY is read through client (a key ending in .zip is the function's code asset,
// read for its pipeline.json); anything else is a file. Other operator tools (kdp replay) take --config the same way.
func LoadConfig(ctx context.Context, client redrive.S3, value string) (processor.Config, error) {
	switch {
	case value == "":
		return processor.DefaultConfig(), nil
	case strings.HasPrefix(value, "s3://"):
		return configFromS3(ctx, client, value)
	default:
		return processor.ReadConfigFile(value)
	}
}

// AggregatesProblem says what is wrong with --aggregate-table and --skip-aggregates for the configuration cfg, ""
// when nothing: a configuration with aggregates needs one of them. kdp replay takes both flags the same way.
func AggregatesProblem(cfg processor.Config, table string, skip bool) string {
	return aggregatesProblem(cfg, table, skip)
}
