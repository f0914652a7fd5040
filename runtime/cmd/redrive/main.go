// Command redrive brings the records a Kinesis-to-DynamoDB pipeline failed on back into its table, through the same
// processor code and configuration as the pipeline, verifying what it reads before writing (see package
// runtime/redrive for what it does and what it trusts):
//
//	redrive dlq    --queue-url URL --stream ARN --table T [--error-table E] [--config C] [--aggregate-table A] [flags]
//	redrive s3     --bucket B [--prefix aws/lambda/<mapping UUID>/] [--delete] --stream ARN --table T [--error-table E] [--config C] [--aggregate-table A] [flags]
//	redrive errors --error-table E --table T [--stream ARN] [--reason TEXT] [--since TIME] [--until TIME] [--config C] [--aggregate-table A] [flags]
//
// --stream pins the pipeline's stream (its ARN): required for dlq and s3, where a message or object naming another
// stream (partition, region, account or name) is left where it is and reported; for errors, each entry is checked
// against the record the stream still holds. Records the stream no longer holds are written insert-only: never over
// an existing item (a rerun finds its own items and counts them as stored; an item of another record refuses the
// record, reported as "refused", its source kept). --allow-overwrite-unverified writes them with conditional writes
// instead; the risk is that a forged object or entry then overwrites real items.
//
// Common flags: --dry-run (read and transform, write and delete nothing; refusals are predicted), --rate N (records
// per second, stream reads included), --batch-size N, --verbose (the processor's per-batch logs). --table,
// --error-table and --config default to $PIPELINE_TABLE_NAME, $PIPELINE_ERROR_TABLE_NAME and $PIPELINE_CONFIG_FILE;
// without a configuration the processor's default one is used. --config takes the pipeline's pipeline.json as a
// file, or as s3://BUCKET/KEY; a key ending in .zip is a Lambda code asset, read for its pipeline.json. The stack
// outputs of the construct name the function's own code asset, so the command runs with the configuration the
// function runs with.
//
// A configuration with aggregates needs --aggregate-table (default $PIPELINE_AGGREGATE_TABLE_NAME; the stack outputs
// pass it): each record stored is counted into the aggregates where the pipeline did not count it (sent to the error
// table, given up on by the event source mapping), exactly once, however often the redrive runs. Without it the
// command stops with a usage error, unless --skip-aggregates is passed: data only, the records stored stay uncounted.
// A dry run writes nothing to the aggregate table; its summary says how many records it would recount.
//
// AWS access comes from the SDK's default chain: environment, shared config and credentials files (AWS_PROFILE),
// SSO, instance roles; AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL_DYNAMODB and
// AWS_ENDPOINT_URL_S3 point it at local emulators.
//
// IAM actions the command needs (the construct's GrantRedrive gives them):
//
//	every mode: dynamodb:PutItem and dynamodb:GetItem on the data table (one conditional PutItem per item; GetItem
//	            when an insert finds its key taken) and dynamodb:PutItem, dynamodb:BatchWriteItem on the error table
//	            (records that fail again); s3:GetObject on the code asset with --config s3://...;
//	            dynamodb:GetItem and dynamodb:PutItem on the aggregate table with --aggregate-table
//	dlq:        sqs:ReceiveMessage, sqs:ChangeMessageVisibility, sqs:DeleteMessage on the queue;
//	            kinesis:GetShardIterator, kinesis:GetRecords on the stream
//	s3:         s3:ListBucket on the bucket, s3:GetObject on its objects (s3:DeleteObject with --delete);
//	            kinesis:GetShardIterator, kinesis:GetRecords on the stream (every object is verified against it)
//	errors:     dynamodb:Scan, dynamodb:GetItem, dynamodb:BatchGetItem, dynamodb:DeleteItem on the error table;
//	            kinesis:GetShardIterator, kinesis:GetRecords on the stream with --stream
//
// Progress (counts and rate) goes to standard error, rewritten in place on a terminal and as plain lines otherwise;
// every source left behind (with its shard and sequence numbers and the reason) and the summary go to standard
// output. Every field that comes from a message, an object or an entry is escaped when printed (control characters,
// escape sequences, bidirectional overrides and invalid UTF-8 appear as \x1b, \u202e, \xff). The exit status is 0
// when everything was recovered, 1 when anything was left behind (including refused, foreign-stream and
// payload-differs sources) or the run failed, 2 for bad usage.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
