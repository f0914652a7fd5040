// Command aggregates is a CDK app with one pipeline that stores the AWS sample's sensor readings and counts them per
// category per minute, exactly once: the number of readings, their total, the lowest and the highest value. Run it
// on this machine with `kdp local` (see the README's "Aggregates"), or synthesize it with `npx cdk synth`.
package main

import (
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
)

// NewAggregatesStack returns the example's stack: a pipeline whose processor keeps the readings per category per
// minute (by the readings' own Timestamp) in the aggregate table.
func NewAggregatesStack(scope constructs.Construct, id string, props *awscdk.StackProps) awscdk.Stack {
	stack := awscdk.NewStack(scope, jsii.String(id), props)
	kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
		Aggregates: &[]*kinesispipeline.AggregateProps{{
			Name:     jsii.String("perCategory"),
			GroupBy:  jsii.Strings("Category"),
			Window:   awscdk.Duration_Minutes(jsii.Number(1)),
			TimeFrom: jsii.String("Timestamp"),
			Measures: &[]*kinesispipeline.AggregateMeasure{
				{Name: jsii.String("readings"), Kind: kinesispipeline.AggregateMeasureKind_COUNT},
				{Name: jsii.String("total"), Kind: kinesispipeline.AggregateMeasureKind_SUM, Path: jsii.String("Value")},
				{Name: jsii.String("lowest"), Kind: kinesispipeline.AggregateMeasureKind_MIN, Path: jsii.String("Value")},
				{Name: jsii.String("highest"), Kind: kinesispipeline.AggregateMeasureKind_MAX, Path: jsii.String("Value")},
			},
		}},
	})
	return stack
}

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	NewAggregatesStack(app, "KinesisDynamoPipelineAggregates", &awscdk.StackProps{Env: cliEnvironment()})
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
