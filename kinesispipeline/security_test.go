package kinesispipeline_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
)

// customized builds the fully customized pipeline of the security tests: a customer-managed key, a VPC, an S3
// on-failure destination and X-Ray tracing.
func customized(stack awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
	key := awskms.NewKey(stack, jsii.String("Key"), &awskms.KeyProps{EnableKeyRotation: jsii.Bool(true)})
	vpc := awsec2.NewVpc(stack, jsii.String("Vpc"), &awsec2.VpcProps{MaxAzs: jsii.Number(2), NatGateways: jsii.Number(0),
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{{Name: jsii.String("private"), SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED}},
		// The test's own VPC stays out of the way under the recommended feature flags: no custom resource (a second
		// function) restricting its default security group.
		RestrictDefaultSecurityGroup: jsii.Bool(false)})
	// With @aws-cdk/core:annotationsInValidationReport, an error annotation fails synth, cdk-nag's on this VPC too.
	cdknag.NagSuppressions_AddResourceSuppressions(vpc, &[]*cdknag.NagPackSuppression{{Id: jsii.String("AwsSolutions-VPC7"),
		Reason: jsii.String("the test's own VPC, not the construct's: flow logs are the application's choice")}}, jsii.Bool(true))
	return &kinesispipeline.KinesisDynamoPipelineProps{
		EncryptionKey:        key,
		Vpc:                  vpc,
		FailureBucketEnabled: jsii.Bool(true),
		Tracing:              awslambda.Tracing_ACTIVE,
		DashboardEnabled:     jsii.Bool(true),
	}
}

// TestCdkNag applies the AwsSolutions pack and requires no unsuppressed error or warning on the pipeline's resources,
// and a written reason for every suppression.
func TestCdkNag(t *testing.T) {
	tests := []struct {
		name  string
		props func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps
	}{
		{"default", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps { return nil }},
		{"customer key, VPC, S3 destination, tracing", customized},
		{"table capacity: provisioned, pre-warmed, error-table ceiling", capacityProps},
		{"self-test on a schedule", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{SelfTestEnabled: jsii.Bool(true),
				SelfTestSchedule: awsevents.Schedule_Rate(awscdk.Duration_Hours(jsii.Number(1)))}
		}},
		{"self-test, customer key, VPC, S3 destination, tracing", func(stack awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			props := customized(stack)
			props.SelfTestEnabled = jsii.Bool(true)
			return props
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := testutil.NewApp()
			stack := awscdk.NewStack(app, jsii.String("Nag"), &awscdk.StackProps{
				Env: &awscdk.Environment{Account: jsii.String("123456789012"), Region: jsii.String("eu-west-1")},
			})
			testutil.Must(t, func() {
				kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), tt.props(stack))
				awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
			})
			var findings []string
			testutil.Must(t, func() {
				annotations := assertions.Annotations_FromStack(stack)
				for kind, messages := range map[string]*[]*cxapi.SynthesisMessage{
					"error":   annotations.FindError(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))),
					"warning": annotations.FindWarning(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))),
				} {
					for _, m := range *messages {
						// The test's own VPC and key are not the construct's: only the pipeline's findings count.
						if strings.HasPrefix(*m.Id, "/Nag/Pipeline/") {
							findings = append(findings, fmt.Sprintf("%s %s: %v", kind, *m.Id, m.Entry.Data))
						}
					}
				}
			})
			for _, f := range findings {
				t.Error(f)
			}
			tmpl := testutil.Template(t, stack)
			suppressions := 0
			for id, r := range tmpl["Resources"].(map[string]interface{}) {
				rules, _ := testutil.Get(r, "Metadata", "cdk_nag", "rules_to_suppress").([]interface{})
				for _, rule := range rules {
					suppressions++
					if reason, _ := testutil.Get(rule, "reason").(string); len(reason) < 40 {
						t.Errorf("%s: suppression %v has no written reason", id, rule)
					}
				}
			}
			if suppressions == 0 {
				t.Error("expected at least the SQS3 or S1 suppression")
			}
		})
	}
}

func TestCustomerManagedKey(t *testing.T) {
	stack := testutil.NewStack()
	testutil.Must(t, func() { kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), customized(stack)) })
	tmpl := testutil.Template(t, stack)
	keyID, _ := testutil.OneResource(t, tmpl, "AWS::KMS::Key")
	keyArn := map[string]interface{}{"Fn::GetAtt": []string{keyID, "Arn"}}

	assertEqual(t, "stream key", testutil.Get(testutil.Properties(t, tmpl, typeStream), "StreamEncryption"),
		map[string]interface{}{"EncryptionType": "KMS", "KeyId": keyArn})
	for id, table := range testutil.Resources(tmpl, typeTable) {
		assertEqual(t, id+" SSE", testutil.Get(table, "Properties", "SSESpecification", "SSEType"), "KMS")
		assertEqual(t, id+" key", testutil.Get(table, "Properties", "Replicas", "0", "SSESpecification", "KMSMasterKeyId"), keyArn)
	}
	assertEqual(t, "bucket key", testutil.Get(testutil.Properties(t, tmpl, typeBucket), "BucketEncryption",
		"ServerSideEncryptionConfiguration", "0", "ServerSideEncryptionByDefault", "KMSMasterKeyID"), keyArn)
	assertEqual(t, "log group key", testutil.Properties(t, tmpl, typeLogGroup)["KmsKeyId"], keyArn)

	fn := testutil.Properties(t, tmpl, typeFunction)
	assertEqual(t, "tracing", fn["TracingConfig"], map[string]interface{}{"Mode": "Active"})
	if testutil.Get(fn, "VpcConfig", "SubnetIds") == nil {
		t.Error("function is not placed in the VPC")
	}
	managed, _ := json.Marshal(testutil.Properties(t, tmpl, typeRole)["ManagedPolicyArns"])
	if !strings.Contains(string(managed), "service-role/AWSLambdaVPCAccessExecutionRole") {
		t.Errorf("a function in a VPC needs AWSLambdaVPCAccessExecutionRole for its network interfaces, got %s", managed)
	}

	// Every statement is scoped: no "*" resource except X-Ray's (which supports none).
	statements := testutil.Get(testutil.Properties(t, tmpl, typePolicy), "PolicyDocument", "Statement").([]interface{})
	var kms, s3 []string
	for _, s := range statements {
		actions, _ := json.Marshal(testutil.Get(s, "Action"))
		resources, _ := json.Marshal(testutil.Get(s, "Resource"))
		if strings.Contains(string(resources), `"*"`) && !strings.Contains(string(actions), "xray:") {
			t.Errorf("wildcard resource for %s", actions)
		}
		if strings.Contains(string(actions), "kms:") {
			kms = append(kms, string(resources))
		}
		if strings.Contains(string(actions), "s3:") {
			s3 = append(s3, string(actions))
		}
	}
	for _, r := range kms {
		if !strings.Contains(r, keyID) {
			t.Errorf("KMS statement not scoped to the key: %s", r)
		}
	}
	assertEqual(t, "S3 actions", s3, []string{`"s3:PutObject"`, `"s3:ListBucket"`})

	keyPolicy, _ := json.Marshal(testutil.Properties(t, tmpl, "AWS::KMS::Key")["KeyPolicy"])
	for _, want := range []string{"logs.eu-west-1.amazonaws.com", "kms:EncryptionContext:aws:logs:arn", ":logs:eu-west-1:123456789012:log-group:*"} {
		if !strings.Contains(string(keyPolicy), want) {
			t.Errorf("key policy must let CloudWatch Logs of this account and region use the key (%s): %s", want, keyPolicy)
		}
	}
}

func TestEncryptionKeyNeedsARegion(t *testing.T) {
	stack := awscdk.NewStack(testutil.NewApp(), jsii.String("Agnostic"), nil)
	msg := testutil.PanicMessage(t, func() {
		kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
			EncryptionKey: awskms.NewKey(stack, jsii.String("Key"), nil),
		})
	})
	if !strings.Contains(msg, "EncryptionKey: needs a stack with an explicit region") {
		t.Errorf("got %s", msg)
	}
}

func TestVpcValidation(t *testing.T) {
	stack := testutil.NewStack()
	msg := testutil.PanicMessage(t, func() {
		kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
			VpcSubnets: &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED},
		})
	})
	if !strings.Contains(msg, "VpcSubnets: only allowed with Vpc") {
		t.Errorf("got %s", msg)
	}
}
