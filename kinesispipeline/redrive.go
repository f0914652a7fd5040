package kinesispipeline

import (
	"runtime/debug"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"
)

// modulePath is this module's path, for the redrive command in the outputs.
const modulePath = "github.com/cdk-constructs-go/kinesis-dynamo-pipeline"

// GrantRedrive gives grantee (an operator's role) exactly what the redrive command (runtime/cmd/redrive) needs for
// this pipeline: reading and deleting on-failure messages or objects, reading the stream ranges they point at,
// writing items to the table, and scanning, rewriting and deleting error-table entries, plus the matching use of
// customer-managed keys.
func (p *KinesisDynamoPipeline) GrantRedrive(grantee awsiam.IGrantable) awsiam.Grant {
	grant := p.stream.Grant(grantee, jsii.String("kinesis:GetShardIterator"), jsii.String("kinesis:GetRecords"))
	if key := p.stream.EncryptionKey(); key != nil {
		grant = grant.Combine(key.GrantDecrypt(grantee))
	}
	grant = grant.Combine(grantItemWrites(p.table, grantee))
	if p.errorTable != nil {
		grant = grant.Combine(p.errorTable.Grant(grantee, jsii.String("dynamodb:Scan"), jsii.String("dynamodb:GetItem"),
			jsii.String("dynamodb:BatchGetItem"), jsii.String("dynamodb:DeleteItem"), jsii.String("dynamodb:BatchWriteItem"),
			jsii.String("dynamodb:PutItem")))
		if key := p.errorTable.EncryptionKey(); key != nil {
			grant = grant.Combine(key.GrantEncryptDecrypt(grantee))
		}
	}
	if p.queue != nil {
		grant = grant.Combine(p.queue.Grant(grantee, jsii.String("sqs:ReceiveMessage"), jsii.String("sqs:DeleteMessage"),
			jsii.String("sqs:ChangeMessageVisibility")))
		if key := p.queue.EncryptionMasterKey(); key != nil {
			grant = grant.Combine(key.GrantDecrypt(grantee))
		}
	}
	if p.bucket != nil {
		grant = grant.Combine(awsiam.Grant_AddToPrincipal(&awsiam.GrantOnPrincipalOptions{
			Grantee: grantee, Actions: jsii.Strings("s3:ListBucket"), ResourceArns: jsii.Strings(*p.bucket.BucketArn()),
		}))
		grant = grant.Combine(awsiam.Grant_AddToPrincipal(&awsiam.GrantOnPrincipalOptions{
			Grantee: grantee, Actions: jsii.Strings("s3:GetObject", "s3:DeleteObject"),
			ResourceArns: jsii.Strings(*p.bucket.ArnForObjects(jsii.String("*"))),
		}))
		if key := p.bucket.EncryptionKey(); key != nil {
			grant = grant.Combine(key.GrantDecrypt(grantee))
		}
	}
	return grant
}

// createOutputs documents the pipeline's resources and the redrive commands for them as stack outputs.
func (p *KinesisDynamoPipeline) createOutputs(in *KinesisDynamoPipelineProps) {
	if !enabled(in.OutputsEnabled) {
		return
	}
	output := func(id, description string, value *string) {
		awscdk.NewCfnOutput(p, jsii.String(id), &awscdk.CfnOutputProps{Value: value, Description: jsii.String(description)})
	}
	output("StreamName", "Kinesis stream the pipeline reads; producers put JSON records here", p.stream.StreamName())
	output("TableName", "DynamoDB table the items land in", p.table.TableName())
	redrive := "go run " + modulePath + "/runtime/cmd/redrive@" + moduleVersion()
	tables := " --table " + *p.table.TableName()
	if p.errorTable != nil {
		output("ErrorTableName", "DynamoDB table of records that could not be written, with payload and reason", p.errorTable.TableName())
		tables += " --error-table " + *p.errorTable.TableName()
		output("RedriveErrorTableCommand", "Re-processes error-table entries once the cause is fixed (add --reason, --since, --dry-run)",
			jsii.String(redrive+" errors"+tables))
	}
	if p.queue != nil {
		output("DeadLetterQueueUrl", "On-failure queue: shard and sequence range of batches that kept failing", p.queue.QueueUrl())
		output("RedriveDeadLetterQueueCommand", "Re-processes the records the on-failure queue points at, while the stream retains them",
			jsii.String(redrive+" dlq --queue-url "+*p.queue.QueueUrl()+tables))
	}
	if p.bucket != nil {
		output("FailureBucketName", "On-failure bucket: batches that kept failing, with their payloads", p.bucket.BucketName())
		output("RedriveFailureBucketCommand", "Re-processes the batches in the on-failure bucket",
			jsii.String(redrive+" s3 --bucket "+*p.bucket.BucketName()+tables))
	}
}

// moduleVersion is the version of this module the CDK app was built with, so the redrive command in the outputs
// matches the deployed processor; "latest" when unknown (a development build).
func moduleVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == modulePath && dep.Version != "" && dep.Version != "(devel)" {
				return dep.Version
			}
		}
	}
	return "latest"
}
