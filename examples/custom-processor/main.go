// Command custom-processor is a CDK app whose pipeline runs its own Go processor (./processor, built from this
// module) instead of the default one. Synthesize it with `npx cdk synth` from this directory.
package main

import (
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
)

// NewCustomProcessorStack returns the example's stack: a pipeline whose function is the enrich processor.
func NewCustomProcessorStack(scope constructs.Construct, id string, props *awscdk.StackProps) awscdk.Stack {
	stack := awscdk.NewStack(scope, jsii.String(id), props)
	kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
		// A directory relative to where the app runs (this one), or an import path.
		ProcessorEntry: jsii.String("./processor"),
		RemovalPolicy:  awscdk.RemovalPolicy_DESTROY,
	})
	return stack
}

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	var env *awscdk.Environment
	if account, region := os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION"); account != "" && region != "" {
		env = &awscdk.Environment{Account: jsii.String(account), Region: jsii.String(region)}
	}
	NewCustomProcessorStack(app, "KinesisDynamoPipelineCustomProcessor", &awscdk.StackProps{Env: env})
	app.Synth(nil)
}
