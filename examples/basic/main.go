// Command basic is a CDK app with one Kinesis -> Lambda -> DynamoDB pipeline, all defaults except RemovalPolicy
// DESTROY so `cdk destroy` leaves nothing behind. Synthesize it with `npx cdk synth` from this directory.
package main

import (
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
)

// NewBasicStack returns the example's stack: a pipeline and outputs naming what a user needs to try it.
func NewBasicStack(scope constructs.Construct, id string, props *awscdk.StackProps) awscdk.Stack {
	stack := awscdk.NewStack(scope, jsii.String(id), props)
	pipeline := kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	awscdk.NewCfnOutput(stack, jsii.String("StreamName"), &awscdk.CfnOutputProps{
		Value:       pipeline.Stream().StreamName(),
		Description: jsii.String("Put JSON records here"),
	})
	awscdk.NewCfnOutput(stack, jsii.String("TableName"), &awscdk.CfnOutputProps{
		Value:       pipeline.Table().TableName(),
		Description: jsii.String("Items land here"),
	})
	awscdk.NewCfnOutput(stack, jsii.String("ErrorTableName"), &awscdk.CfnOutputProps{
		Value:       pipeline.ErrorTable().TableName(),
		Description: jsii.String("Records that can never be written land here, with their payload and the reason"),
	})
	awscdk.NewCfnOutput(stack, jsii.String("DeadLetterQueueUrl"), &awscdk.CfnOutputProps{
		Value:       pipeline.DeadLetterQueue().QueueUrl(),
		Description: jsii.String("On-failure records (shard and sequence range) of batches that kept failing"),
	})
	return stack
}

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	NewBasicStack(app, "KinesisDynamoPipelineBasic", &awscdk.StackProps{Env: cliEnvironment()})
	app.Synth(nil)
}

// cliEnvironment returns the account and region of the CDK CLI's credentials, which `cdk deploy` sets, or nil for
// an environment-agnostic stack (`cdk synth` without credentials).
func cliEnvironment() *awscdk.Environment {
	account, region := os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION")
	if account == "" || region == "" {
		return nil
	}
	return &awscdk.Environment{Account: jsii.String(account), Region: jsii.String(region)}
}
