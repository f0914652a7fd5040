// Command custom-transform is a CDK app whose pipeline reproduces the AWS sample's processing declaratively, with
// no Go code of its own: items keyed by Category and Timestamp, ProcessedValue = Value * 2 and a processed timestamp.
// Synthesize it with `npx cdk synth` from this directory.
package main

import (
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
)

// readingSchema is what a reading must look like; other records go to the error table with the schema's complaint.
const readingSchema = `{
  "type": "object",
  "required": ["Timestamp", "Value", "Category"],
  "properties": {
    "Timestamp": {"type": "string", "format": "date-time"},
    "Value": {"type": "number"},
    "Category": {"type": "string", "minLength": 1}
  }
}`

// PipelineProps returns the example's pipeline configuration.
func PipelineProps() *kinesispipeline.KinesisDynamoPipelineProps {
	return &kinesispipeline.KinesisDynamoPipelineProps{
		PartitionKey: &awsdynamodb.Attribute{Name: jsii.String("Category"), Type: awsdynamodb.AttributeType_STRING},
		SortKey:      &awsdynamodb.Attribute{Name: jsii.String("Timestamp"), Type: awsdynamodb.AttributeType_STRING},
		Transform: &kinesispipeline.TransformProps{
			PartitionKeyFrom: jsii.String("Category"),
			SortKeyFrom:      jsii.String("Timestamp"),
			Schema:           jsii.String(readingSchema),
			Filter:           jsii.String(`Category != "TEST"`),
			Computed: &[]*kinesispipeline.ComputedAttribute{
				{Name: jsii.String("ProcessedValue"), Expression: jsii.String("Value * 2")},
				{Name: jsii.String("ProcessedTimestamp"), Expression: jsii.String("iso8601(record.processedAt)")},
			},
			TimeToLive: awscdk.Duration_Days(jsii.Number(30)),
		},
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	}
}

// NewCustomTransformStack returns the example's stack.
func NewCustomTransformStack(scope constructs.Construct, id string, props *awscdk.StackProps) (awscdk.Stack, *kinesispipeline.KinesisDynamoPipeline) {
	stack := awscdk.NewStack(scope, jsii.String(id), props)
	pipeline := kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), PipelineProps())
	return stack, pipeline
}

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	var env *awscdk.Environment
	if account, region := os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION"); account != "" && region != "" {
		env = &awscdk.Environment{Account: jsii.String(account), Region: jsii.String(region)}
	}
	NewCustomTransformStack(app, "KinesisDynamoPipelineCustomTransform", &awscdk.StackProps{Env: env})
	app.Synth(nil)
}
