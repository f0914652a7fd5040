package kinesispipeline_test

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
)

// The whole pipeline with safe defaults: nothing is lost, stateful resources are retained.
func ExampleNewKinesisDynamoPipeline() {
	app := awscdk.NewApp(nil)
	stack := awscdk.NewStack(app, jsii.String("Ingest"), nil)
	kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), nil)
	app.Synth(nil)
}

// Tuning throughput and reusing an existing table.
func ExampleNewKinesisDynamoPipeline_customized() {
	app := awscdk.NewApp(nil)
	stack := awscdk.NewStack(app, jsii.String("Ingest"), nil)
	orders := awsdynamodb.TableV2_FromTableName(stack, jsii.String("Orders"), jsii.String("orders"))
	kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
		StreamMode:            awskinesis.StreamMode_ON_DEMAND,
		Table:                 orders,
		PartitionKey:          &awsdynamodb.Attribute{Name: jsii.String("pk"), Type: awsdynamodb.AttributeType_STRING},
		BatchSize:             jsii.Number(1000),
		MaxBatchingWindow:     awscdk.Duration_Seconds(jsii.Number(2)),
		ParallelizationFactor: jsii.Number(2),
		Architecture:          awslambda.Architecture_ARM_64(),
		FailureBucketEnabled:  jsii.Bool(true), // on-failure records keep their payloads
	})
	app.Synth(nil)
}

// Producers and readers get exactly the access they need.
func ExampleKinesisDynamoPipeline_GrantWrite() {
	app := awscdk.NewApp(nil)
	stack := awscdk.NewStack(app, jsii.String("Ingest"), nil)
	pipeline := kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), nil)
	producer := awslambda.Function_FromFunctionName(stack, jsii.String("Producer"), jsii.String("producer"))
	pipeline.GrantWrite(producer)
}

// A cost ceiling on the data table's writes, with an S3 on-failure destination that keeps the payloads of whatever
// the throttling pushes past the retries, and longer stream retention to redrive from.
func ExampleNewKinesisDynamoPipeline_writeCeiling() {
	app := awscdk.NewApp(nil)
	stack := awscdk.NewStack(app, jsii.String("Ingest"), nil)
	kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
		TableBilling: awsdynamodb.Billing_OnDemand(&awsdynamodb.MaxThroughputProps{
			MaxWriteRequestUnits: jsii.Number(1000),
		}),
		RetentionPeriod:      awscdk.Duration_Days(jsii.Number(3)),
		FailureBucketEnabled: jsii.Bool(true),
	})
	app.Synth(nil)
}

// Provisioned capacity for a steady load: writes autoscale between 50 and 500 units.
func ExampleNewKinesisDynamoPipeline_provisioned() {
	app := awscdk.NewApp(nil)
	stack := awscdk.NewStack(app, jsii.String("Ingest"), nil)
	kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
		TableBilling: awsdynamodb.Billing_Provisioned(&awsdynamodb.ThroughputProps{
			ReadCapacity: awsdynamodb.Capacity_Fixed(jsii.Number(5)),
			WriteCapacity: awsdynamodb.Capacity_Autoscaled(&awsdynamodb.AutoscaledCapacityOptions{
				MinCapacity: jsii.Number(50), MaxCapacity: jsii.Number(500),
			}),
		}),
	})
	app.Synth(nil)
}
