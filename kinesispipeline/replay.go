package kinesispipeline

import (
	"runtime/debug"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"

	replaycli "github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/replay/cli"
)

// kdpPackage is the kdp tool's import path; `kdp replay` is its replay command.
const kdpPackage = modulePath + "/runtime/cmd/kdp"

// GrantReplay gives grantee (an operator's role) exactly what `kdp replay` (as the stack output runs it) needs for
// this pipeline: reading the stream (kinesis:DescribeStreamSummary for its retention, kinesis:ListShards,
// kinesis:GetShardIterator, kinesis:GetRecords), writing items to the table with conditional PutItem and reading
// items (dynamodb:GetItem, for a dry run's predictions), writing error items (dynamodb:PutItem,
// dynamodb:BatchWriteItem on the error table), reading the function's code asset for its configuration, and
// reading and writing aggregate items (dynamodb:GetItem, dynamodb:PutItem on the aggregate table, with Aggregates:
// the records it stores are recounted there), plus the matching use of customer-managed keys. It deletes nothing. A CDK bootstrap bucket encrypted with a
// customer-managed key needs kms:Decrypt on that key too, which the construct cannot see.
//
// GrantRedrive does not cover it (it lacks kinesis:ListShards and kinesis:DescribeStreamSummary) and gives more
// (deleting messages, objects and error entries): grant each command what it runs.
func (p *KinesisDynamoPipeline) GrantReplay(grantee awsiam.IGrantable) awsiam.Grant {
	grant := p.stream.Grant(grantee, jsii.String("kinesis:DescribeStreamSummary"), jsii.String("kinesis:ListShards"),
		jsii.String("kinesis:GetShardIterator"), jsii.String("kinesis:GetRecords"))
	if key := p.stream.EncryptionKey(); key != nil {
		grant = grant.Combine(key.GrantDecrypt(grantee))
	}
	grant = grant.Combine(p.table.Grant(grantee, jsii.String("dynamodb:PutItem"), jsii.String("dynamodb:GetItem")))
	if key := p.table.EncryptionKey(); key != nil {
		grant = grant.Combine(key.GrantEncryptDecrypt(grantee))
	}
	if p.errorTable != nil {
		grant = grant.Combine(grantItemWrites(p.errorTable, grantee))
	}
	if asset := p.codeAsset(); asset != nil {
		grant = grant.Combine(awsiam.Grant_AddToPrincipal(&awsiam.GrantOnPrincipalOptions{
			Grantee: grantee, Actions: jsii.Strings("s3:GetObject"),
			ResourceArns: jsii.Strings(*asset.Bucket().ArnForObjects(asset.S3ObjectKey())),
		}))
	}
	return p.grantAggregateRecount(grantee, grant)
}

// createReplayOutput adds the ReplayCommand output: `kdp replay` for this pipeline's stream and tables, with the
// configuration the function runs with (its code asset), ending in --since for the operator to append the window's
// start. A pipeline with its own processor (ProcessorEntry) gets none: the command runs the default processor's
// transform, and would write other items than the function does.
func (p *KinesisDynamoPipeline) createReplayOutput(in *KinesisDynamoPipelineProps) {
	if !enabled(in.OutputsEnabled) || in.ProcessorEntry != nil {
		return
	}
	info, _ := debug.ReadBuildInfo()
	cmd := "go run " + kdpPackage
	where := ""
	if v := proxyVersion(info); v != "" {
		cmd += "@" + v
	} else {
		where = "; run it in the CDK app's module directory"
	}
	flag := func(name, value string) string { return " --" + name + " " + value }
	cmd += " replay" + flag(replaycli.FlagStream, *p.stream.StreamArn()) + flag(replaycli.FlagTable, *p.table.TableName())
	if p.errorTable != nil {
		cmd += flag(replaycli.FlagErrorTable, *p.errorTable.TableName())
	}
	if asset := p.codeAsset(); asset != nil {
		cmd += flag(replaycli.FlagConfig, "s3://"+*asset.S3BucketName()+"/"+*asset.S3ObjectKey())
	}
	if p.aggregateTable != nil {
		cmd += flag(replaycli.FlagAggregateTable, *p.aggregateTable.TableName())
	}
	cmd += " --" + replaycli.FlagSince
	awscdk.NewCfnOutput(p, jsii.String("ReplayCommand"), &awscdk.CfnOutputProps{
		Value: jsii.String(cmd),
		Description: jsii.String("Replays a time window of the stream through the function's configuration, never overwriting newer items: " +
			"append the window's start (RFC 3339, or a duration ago such as 2h), then --until, --dry-run, --rate as needed" + where),
	})
}
