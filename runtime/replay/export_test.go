package replay

import "github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"

func encodePosition(shard, seq string) ([]byte, error) {
	return processor.EncodePosition(shard, seq, 0)
}
