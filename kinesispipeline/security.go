package kinesispipeline

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// s3Destination is the on-failure destination for a bucket. CDK's S3OnFailureDestination grants read and write
// (including deletes) on the whole bucket; Lambda needs only s3:PutObject and s3:ListBucket (and the key's
// GenerateDataKey), so this binding grants exactly that.
type s3Destination struct{ bucket awss3.IBucket }

var _ awslambda.IEventSourceDlq = (*s3Destination)(nil)

// Bind grants the function's role what Lambda needs to write on-failure records and returns the destination.
func (d *s3Destination) Bind(_ awslambda.IEventSourceMapping, target awslambda.IFunction) *awslambda.DlqDestinationConfig {
	target.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("s3:PutObject"),
		Resources: jsii.Strings(*d.bucket.ArnForObjects(jsii.String("*"))),
	}))
	target.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("s3:ListBucket"),
		Resources: jsii.Strings(*d.bucket.BucketArn()),
	}))
	if key := d.bucket.EncryptionKey(); key != nil {
		key.Grant(target, jsii.String("kms:GenerateDataKey"))
	}
	return &awslambda.DlqDestinationConfig{Destination: d.bucket.BucketArn()}
}

// nagSuppression is one cdk-nag rule suppression, written as `cdk_nag` metadata so consumers never need cdk-nag.
type nagSuppression struct {
	id        string
	reason    string
	appliesTo []interface{} // finding details (strings) or {"regex": "/.../"} entries; empty for the whole rule
}

// suppress attaches suppressions to the CloudFormation resource behind scope.
func suppress(scope constructs.IConstruct, rules ...nagSuppression) {
	if len(rules) == 0 {
		return
	}
	var cfn awscdk.CfnResource
	if child := scope.Node().DefaultChild(); child != nil {
		cfn, _ = child.(awscdk.CfnResource)
	}
	if cfn == nil {
		return // an imported resource: nothing synthesized to annotate
	}
	list := make([]interface{}, 0, len(rules))
	for _, r := range rules {
		entry := map[string]interface{}{"id": r.id, "reason": r.reason}
		if len(r.appliesTo) > 0 {
			entry["applies_to"] = r.appliesTo
		}
		list = append(list, entry)
	}
	cfn.AddMetadata(jsii.String("cdk_nag"), map[string]interface{}{"rules_to_suppress": list})
}

func regex(re string) map[string]interface{} { return map[string]interface{}{"regex": re} }

// suppressFindings records why the remaining cdk-nag AwsSolutions findings are acceptable, each on its resource.
func (p *KinesisDynamoPipeline) suppressFindings(in *KinesisDynamoPipelineProps) {
	if in.DeadLetterQueue == nil && p.queue != nil {
		suppress(p.queue, nagSuppression{id: "AwsSolutions-SQS3", reason: "This queue is itself the dead-letter " +
			"(on-failure) destination of the pipeline's event source mapping; nothing consumes it that could fail."})
	}
	if in.FailureBucket == nil && p.bucket != nil {
		suppress(p.bucket, nagSuppression{id: "AwsSolutions-S1", reason: "Only the event source mapping writes " +
			"on-failure records here, with the pipeline's role; CloudTrail records those calls. Pass FailureBucket for " +
			"a bucket with server access logs to a log bucket of your own."})
	}

	if in.Stream == nil && in.EncryptionKey != nil {
		suppress(p.stream, nagSuppression{id: "AwsSolutions-KDS3", reason: "The user chose a customer-managed key " +
			"(EncryptionKey), typically for compliance; the README notes the extra KMS cost per producer and consumer call."})
	}

	var policy []nagSuppression
	if p.bucket != nil {
		policy = append(policy, nagSuppression{id: "AwsSolutions-IAM5", reason: "Lambda writes on-failure records " +
			"under keys it chooses: s3:PutObject is granted on the failure bucket's objects only.",
			appliesTo: []interface{}{regex(`/^Resource::.*\/\*$/g`)}})
	}
	if in.EncryptionKey != nil || p.keyFromResources() {
		policy = append(policy, nagSuppression{id: "AwsSolutions-IAM5", reason: "The KMS actions come from the L2 grant " +
			"methods (grantEncryptDecrypt, grantSendMessages, grantRead) and are scoped to the customer-managed key's ARN.",
			appliesTo: []interface{}{"Action::kms:ReEncrypt*", "Action::kms:GenerateDataKey*"}})
	}
	if in.Tracing != "" && in.Tracing != awslambda.Tracing_DISABLED {
		policy = append(policy, nagSuppression{id: "AwsSolutions-IAM5", reason: "X-Ray's PutTraceSegments and " +
			"PutTelemetryRecords do not support resource-level permissions.", appliesTo: []interface{}{"Resource::*"}})
	}
	if len(policy) > 0 {
		if defaultPolicy := p.role.Node().TryFindChild(jsii.String("DefaultPolicy")); defaultPolicy != nil {
			suppress(defaultPolicy, mergeByID(policy)...)
		}
	}
	if in.Vpc != nil {
		suppress(p.role, nagSuppression{id: "AwsSolutions-IAM4", reason: "A function in a VPC needs " +
			"AWSLambdaVPCAccessExecutionRole (added by the Lambda L2) to manage its network interfaces; its EC2 actions " +
			"do not support resource-level permissions.",
			appliesTo: []interface{}{regex(`/^Policy::arn:<AWS::Partition>:iam::aws:policy\/service-role\/AWSLambdaVPCAccessExecutionRole$/g`)}})
	}
}

// keyFromResources reports whether a resource passed in brings a customer-managed key the role was granted.
func (p *KinesisDynamoPipeline) keyFromResources() bool {
	return p.stream.EncryptionKey() != nil || p.table.EncryptionKey() != nil ||
		(p.errorTable != nil && p.errorTable.EncryptionKey() != nil) ||
		(p.queue != nil && p.queue.EncryptionMasterKey() != nil)
}

// mergeByID joins suppressions of the same rule: cdk-nag reads one entry per rule id.
func mergeByID(rules []nagSuppression) []nagSuppression {
	var out []nagSuppression
	index := map[string]int{}
	for _, r := range rules {
		if i, ok := index[r.id]; ok {
			out[i].reason += " " + r.reason
			out[i].appliesTo = append(out[i].appliesTo, r.appliesTo...)
			continue
		}
		index[r.id] = len(out)
		out = append(out, r)
	}
	return out
}
