// Command basic is a CDK app with one Kinesis -> Lambda -> DynamoDB pipeline, all defaults except RemovalPolicy
// DESTROY so `cdk destroy` leaves nothing behind, and the self-test on, so `cdk deploy` proves the pipeline works.
// Synthesize it with `npx cdk synth` from this directory.
package main

import (
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
)

// NewBasicStack returns the example's stack: one pipeline with defaults and its self-test, which runs at every
// deployment that changes the pipeline (a failure fails the deployment). The construct's outputs name the stream to
// put records into, the tables, the on-failure queue, the redrive commands and the self-test function.
func NewBasicStack(scope constructs.Construct, id string, props *awscdk.StackProps) awscdk.Stack {
	stack := awscdk.NewStack(scope, jsii.String(id), props)
	kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
		RemovalPolicy:   awscdk.RemovalPolicy_DESTROY,
		SelfTestEnabled: jsii.Bool(true),
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
