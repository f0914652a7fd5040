package redrive

import (
	"github.com/aws/aws-lambda-go/events"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// EventRecord returns the event record Lambda's event source mapping would have sent for rec, read from shard of the
// stream ref names: event id "shardId:sequenceNumber", the stream's ARN and region, the record's data, partition key,
// sequence number and arrival time. Tools that read the stream themselves (kdp replay) build the processor's input
// with it, so item keys match the pipeline's.
func EventRecord(ref StreamRef, shard string, rec ktypes.Record) events.KinesisEventRecord {
	return eventRecord(ref, shard, rec)
}
