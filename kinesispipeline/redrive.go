package kinesispipeline

import (
	"runtime/debug"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3assets"
	"github.com/aws/jsii-runtime-go"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	redrivelib "github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive/cli"
)

// modulePath is this module's path, for the redrive command in the outputs.
const modulePath = "github.com/cdk-constructs-go/kinesis-dynamo-pipeline"

// redrivePackage is the redrive command's import path.
const redrivePackage = modulePath + "/runtime/cmd/redrive"

// GrantRedrive gives grantee (an operator's role) exactly what the redrive command (runtime/cmd/redrive, as the stack
// outputs run it) needs for this pipeline: reading and deleting on-failure messages or objects, reading the stream
// ranges they point at (and the records error entries name), writing items to the table and reading the item an
// insert-only write finds in its way, scanning, rewriting and deleting error-table entries, and reading the
// function's code asset for its configuration, reading and writing aggregate items (dynamodb:GetItem,
// dynamodb:PutItem on the aggregate table, with Aggregates: the records it stores are recounted there), plus the
// matching use of customer-managed keys. A CDK bootstrap
// bucket encrypted with a customer-managed key (cdk bootstrap --bootstrap-customer-key) needs kms:Decrypt on that
// key too, which the construct cannot see.
//
// The command runs with these permissions and trusts none of what it reads but the stream: see package
// runtime/redrive for its trust model.
func (p *KinesisDynamoPipeline) GrantRedrive(grantee awsiam.IGrantable) awsiam.Grant {
	grant := p.stream.Grant(grantee, jsii.String("kinesis:GetShardIterator"), jsii.String("kinesis:GetRecords"))
	if key := p.stream.EncryptionKey(); key != nil {
		grant = grant.Combine(key.GrantDecrypt(grantee))
	}
	grant = grant.Combine(grantItemWrites(p.table, grantee))
	grant = grant.Combine(p.table.Grant(grantee, jsii.String("dynamodb:GetItem")))
	if asset := p.codeAsset(); asset != nil {
		grant = grant.Combine(awsiam.Grant_AddToPrincipal(&awsiam.GrantOnPrincipalOptions{
			Grantee: grantee, Actions: jsii.Strings("s3:GetObject"),
			ResourceArns: jsii.Strings(*asset.Bucket().ArnForObjects(asset.S3ObjectKey())),
		}))
	}
	if p.errorTable != nil {
		grant = grant.Combine(p.errorTable.Grant(grantee, jsii.String("dynamodb:Scan"), jsii.String("dynamodb:GetItem"),
			jsii.String("dynamodb:BatchGetItem"), jsii.String("dynamodb:DeleteItem"), jsii.String("dynamodb:BatchWriteItem"),
			jsii.String("dynamodb:PutItem")))
		if key := p.errorTable.EncryptionKey(); key != nil {
			grant = grant.Combine(key.GrantEncryptDecrypt(grantee))
		}
	}
	grant = p.grantAggregateRecount(grantee, grant)
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

// createOutputs documents the pipeline's resources and the redrive commands for them as stack outputs. Each command
// pins the pipeline's stream, names its tables, and reads the configuration the function runs with from the
// function's own code asset (the pipeline.json the bundler wrote next to bootstrap), whatever its size: the template
// then changes only when the asset does.
func (p *KinesisDynamoPipeline) createOutputs(in *KinesisDynamoPipelineProps) {
	if !enabled(in.OutputsEnabled) {
		return
	}
	output := func(id, description string, value *string) {
		awscdk.NewCfnOutput(p, jsii.String(id), &awscdk.CfnOutputProps{Value: value, Description: jsii.String(description)})
	}
	output("StreamName", "Kinesis stream the pipeline reads; producers put JSON records here", p.stream.StreamName())
	output("TableName", "DynamoDB table the items land in", p.table.TableName())
	if in.ProcessorEntry != nil {
		// The redrive command runs the default processor's transform: with a processor of the user's own it would
		// write other items than the function does. Name the resources only.
		if p.errorTable != nil {
			output("ErrorTableName", "DynamoDB table of records that could not be written, with payload and reason", p.errorTable.TableName())
		}
		if p.queue != nil {
			output("DeadLetterQueueUrl", "On-failure queue: shard and sequence range of batches that kept failing", p.queue.QueueUrl())
		}
		if p.bucket != nil {
			output("FailureBucketName", "On-failure bucket: batches that kept failing, with their payloads", p.bucket.BucketName())
		}
		awscdk.Annotations_Of(p).AddInfo(jsii.String("no redrive command outputs: the redrive command runs the default " +
			"processor's transform, not the one of ProcessorEntry; redrive through your own processor's code (see docs/runbook.md)"))
		return
	}
	info, _ := debug.ReadBuildInfo()
	redrive := redriveCommand(info)
	where := ""
	if proxyVersion(info) == "" {
		where = "; run it in the CDK app's module directory"
	}
	flag := func(name, value string) string { return " --" + name + " " + value }
	common := flag(cli.FlagStream, *p.stream.StreamArn()) + flag(cli.FlagTable, *p.table.TableName())
	if p.errorTable != nil {
		common += flag(cli.FlagErrorTable, *p.errorTable.TableName())
	}
	if asset := p.codeAsset(); asset != nil {
		common += flag(cli.FlagConfig, "s3://"+*asset.S3BucketName()+"/"+*asset.S3ObjectKey())
	}
	if p.aggregateTable != nil {
		common += flag(cli.FlagAggregateTable, *p.aggregateTable.TableName())
	}
	if p.errorTable != nil {
		output("ErrorTableName", "DynamoDB table of records that could not be written, with payload and reason", p.errorTable.TableName())
		output("RedriveErrorTableCommand", "Re-processes error-table entries once the cause is fixed (add --reason, --since, --dry-run)"+where,
			jsii.String(redrive+" "+cli.ModeErrors+common))
	}
	if p.queue != nil {
		output("DeadLetterQueueUrl", "On-failure queue: shard and sequence range of batches that kept failing", p.queue.QueueUrl())
		output("RedriveDeadLetterQueueCommand", "Re-processes the records the on-failure queue points at, while the stream retains them (add --dry-run)"+where,
			jsii.String(redrive+" "+cli.ModeDLQ+flag(cli.FlagQueueURL, *p.queue.QueueUrl())+common))
	}
	if p.bucket != nil {
		output("FailureBucketName", "On-failure bucket: batches that kept failing, with their payloads", p.bucket.BucketName())
		prefix := redrivelib.DefaultS3Prefix + *p.mapping.EventSourceMappingId() + "/"
		output("RedriveFailureBucketCommand", "Re-processes the batches in the on-failure bucket, verified against the stream (add --dry-run, --delete)"+where,
			jsii.String(redrive+" "+cli.ModeS3+flag(cli.FlagBucket, *p.bucket.BucketName())+flag(cli.FlagPrefix, prefix)+common))
	}
}

// codeAsset returns the function's code asset (the zip of bootstrap and pipeline.json in the CDK assets bucket), or
// nil when the function has none.
func (p *KinesisDynamoPipeline) codeAsset() awss3assets.Asset {
	asset, _ := p.function.Node().TryFindChild(jsii.String("Code")).(awss3assets.Asset)
	return asset
}

// redriveCommand returns how to run the redrive command of the module version the CDK app was built with:
// "go run <package>@<version>" when that version can be fetched from a module proxy (it then runs anywhere), else
// "go run <package>", to be run in the app's module directory, which resolves it as the app does (a replace
// directive, a workspace, this repository). The construct imports the command's implementation (package
// runtime/redrive/cli), so a tidy app's go.sum covers everything the command builds from.
func redriveCommand(info *debug.BuildInfo) string {
	cmd := "go run " + redrivePackage
	if v := proxyVersion(info); v != "" {
		cmd += "@" + v
	}
	return cmd
}

// proxyVersion returns the version of this module in info that a module proxy serves, or "" when there is none: the
// module is the main module ("(devel)"), comes through a replace directive (go.mod then requires the zero
// pseudo-version v0.0.0-00010101000000-000000000000, which no proxy serves, or a version of another module path), or
// the build has no module information.
func proxyVersion(info *debug.BuildInfo) string {
	if info == nil {
		return ""
	}
	for _, dep := range info.Deps {
		if dep.Path != modulePath {
			continue
		}
		v := dep.Version
		if dep.Replace != nil || v == "" || v == "(devel)" || module.IsZeroPseudoVersion(v) || !semver.IsValid(v) {
			return ""
		}
		return v
	}
	return ""
}
