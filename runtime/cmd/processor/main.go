// Command processor is the default Kinesis-to-DynamoDB processor, built as the Lambda function's `bootstrap`: each
// record's JSON object becomes one item of the table named by PIPELINE_TABLE_NAME. See package processor.
package main

import "github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"

func main() {
	processor.Start()
}
