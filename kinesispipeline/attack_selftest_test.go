package kinesispipeline_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
)

// TestAttackSelfTestStartingPointBehindTheCanary: where the mapping starts reading decides whether the canary can
// pass on the first deployment. A timestamp after the deployment skips the canary for good; an existing stream read
// from TRIM_HORIZON puts its whole retained backlog before the canary. Synth must say so (as it does for LATEST),
// and stay quiet where the canary comes right after what the mapping reads.
func TestAttackSelfTestStartingPointBehindTheCanary(t *testing.T) {
	future := float64(time.Now().Add(48 * time.Hour).Unix())
	past := float64(time.Now().Add(-48 * time.Hour).Unix())
	tests := []struct {
		name     string
		existing bool
		position awslambda.StartingPosition
		ts       *float64
		want     string // substring of a self-test warning; "" for none
	}{
		{name: "AT_TIMESTAMP after the deployment", position: awslambda.StartingPosition_AT_TIMESTAMP, ts: &future,
			want: "StartingPositionTimestamp"},
		{name: "AT_TIMESTAMP in the past, new stream", position: awslambda.StartingPosition_AT_TIMESTAMP, ts: &past},
		{name: "existing stream from TRIM_HORIZON", existing: true, want: "backlog"},
		{name: "new stream from TRIM_HORIZON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stack := testutil.NewStack()
			props := &kinesispipeline.KinesisDynamoPipelineProps{SelfTestEnabled: jsii.Bool(true), StartingPosition: tt.position,
				StartingPositionTimestamp: tt.ts}
			if tt.existing {
				props.Stream = awskinesis.Stream_FromStreamArn(stack, jsii.String("Existing"),
					jsii.String("arn:aws:kinesis:us-east-1:123456789012:stream/existing"))
			}
			testutil.Must(t, func() { kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), props) })
			var selfTest []string
			for _, w := range testutil.Warnings(t, stack) {
				if strings.Contains(w, "selfTest") || strings.Contains(w, "self-test") {
					selfTest = append(selfTest, w)
				}
			}
			all := strings.Join(selfTest, "\n")
			switch {
			case tt.want == "" && len(selfTest) > 0:
				t.Errorf("unexpected self-test warnings:\n%s", all)
			case tt.want != "" && !strings.Contains(all, tt.want):
				t.Errorf("no self-test warning mentioning %q; self-test warnings:\n%s", tt.want, all)
			}
		})
	}
}

// TestAttackSelfTestRerunsOnNetworkKeyAndPermissionChanges: the self-test exists to prove "permissions, keys,
// network" after a deployment. A change to any of them must change the custom resource's properties, or
// CloudFormation sends no Update and the self-test does not run.
func TestAttackSelfTestRerunsOnNetworkKeyAndPermissionChanges(t *testing.T) {
	properties := func(change func(awscdk.Stack, *kinesispipeline.KinesisDynamoPipelineProps)) string {
		stack := testutil.NewStack()
		props := &kinesispipeline.KinesisDynamoPipelineProps{SelfTestEnabled: jsii.Bool(true)}
		testutil.Must(t, func() {
			if change != nil {
				change(stack, props)
			}
			kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), props)
		})
		tmpl := testutil.Template(t, stack)
		_, cr := resourceWithPrefix(t, tmpl, typeSelfTest, "PipelineSelfTest")
		b, _ := json.Marshal(cr["Properties"])
		return string(b)
	}
	reference := properties(nil)
	tests := []struct {
		name   string
		change func(awscdk.Stack, *kinesispipeline.KinesisDynamoPipelineProps)
	}{
		{"the processor moves into a VPC (network)", func(stack awscdk.Stack, p *kinesispipeline.KinesisDynamoPipelineProps) {
			p.Vpc = awsec2.NewVpc(stack, jsii.String("Vpc"), &awsec2.VpcProps{MaxAzs: jsii.Number(1), NatGateways: jsii.Number(0),
				RestrictDefaultSecurityGroup: jsii.Bool(false),
				SubnetConfiguration:          &[]*awsec2.SubnetConfiguration{{Name: jsii.String("isolated"), SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED}}})
		}},
		{"a customer-managed key (keys and the processor's permissions)", func(stack awscdk.Stack, p *kinesispipeline.KinesisDynamoPipelineProps) {
			p.EncryptionKey = awskms.NewKey(stack, jsii.String("Key"), &awskms.KeyProps{EnableKeyRotation: jsii.Bool(true)})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if properties(tt.change) == reference {
				t.Errorf("the self-test's properties do not change: CloudFormation would not run it after this deployment")
			}
		})
	}
}

// TestAttackSelfTestNonceKeyAccepted: a business-key canary keyed by the run's nonce, as the README asks, synthesizes.
func TestAttackSelfTestNonceKeyAccepted(t *testing.T) {
	stack := testutil.NewStack()
	testutil.Must(t, func() {
		kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
			SelfTestEnabled: jsii.Bool(true), Transform: &kinesispipeline.TransformProps{PartitionKeyFrom: jsii.String("orderId")},
			SelfTestRecord: jsii.String(`{"orderId": "kdp-selftest-$nonce"}`),
			SelfTestKey:    &map[string]interface{}{"id": "kdp-selftest-$nonce"}})
	})
	if n := len(testutil.Resources(testutil.Template(t, stack), typeSelfTest)); n != 1 {
		t.Errorf("%d self-test resources, want 1", n)
	}
}
