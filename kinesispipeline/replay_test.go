package kinesispipeline_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
)

// TestGrantReplay: the operator may read the stream (with ListShards and DescribeStreamSummary), put and read items
// of the table, write the error table and read the code asset; nothing else (no delete, no scan, no queue). With a
// customer-managed key, it may use the key too.
func TestGrantReplay(t *testing.T) {
	for _, withKey := range []bool{false, true} {
		stack := testutil.NewStack()
		operator := awsiam.NewRole(stack, jsii.String("Operator"), &awsiam.RoleProps{AssumedBy: awsiam.NewAccountRootPrincipal()})
		testutil.Must(t, func() {
			props := &kinesispipeline.KinesisDynamoPipelineProps{}
			if withKey {
				props.EncryptionKey = awskms.NewKey(stack, jsii.String("Key"), nil)
			}
			p := kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), props)
			p.GrantReplay(operator)
		})
		tmpl := testutil.Template(t, stack)
		ref := func(id string) string {
			b, _ := json.Marshal(map[string]interface{}{"Fn::GetAtt": []string{id, "Arn"}})
			return string(b)
		}
		streamID, _ := testutil.OneResource(t, tmpl, typeStream)
		dataID, _ := tableID(t, tmpl, "PipelineTable")
		errorsID, _ := tableID(t, tmpl, "PipelineErrorTable")
		_, fn := testutil.OneResource(t, tmpl, typeFunction)
		assetKey, _ := testutil.Get(fn, "Properties", "Code", "S3Key").(string)
		got := policyActions(t, tmpl, "OperatorDefaultPolicy")
		assetObject := ""
		for res := range got {
			if strings.Contains(res, "/"+assetKey+`"`) {
				assetObject = res
			}
		}
		want := map[string][]string{
			ref(streamID): {"kinesis:DescribeStreamSummary", "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards"},
			ref(dataID):   {"dynamodb:GetItem", "dynamodb:PutItem"},
			ref(errorsID): {"dynamodb:BatchWriteItem", "dynamodb:PutItem"},
			assetObject:   {"s3:GetObject"},
		}
		if withKey {
			keyID, _ := testutil.OneResource(t, tmpl, "AWS::KMS::Key")
			actions := got[ref(keyID)]
			for _, a := range []string{"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"} {
				if !contains(actions, a) {
					t.Errorf("key actions %v lack %s", actions, a)
				}
			}
			delete(got, ref(keyID))
		}
		assertEqual(t, "operator policy", got, want)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestReplayCommand: the output runs kdp replay on this pipeline's stream and tables with the function's own
// configuration, ending in --since for the window; built inside this module, it runs the package by import path
// and says where to run it.
func TestReplayCommand(t *testing.T) {
	_, _, tmpl := synth(t, nil)
	streamID, _ := testutil.OneResource(t, tmpl, typeStream)
	dataID, _ := tableID(t, tmpl, "PipelineTable")
	errorsID, _ := tableID(t, tmpl, "PipelineErrorTable")
	_, fn := testutil.OneResource(t, tmpl, typeFunction)
	asset := "s3://" + testutil.Get(fn, "Properties", "Code", "S3Bucket").(string) + "/" + testutil.Get(fn, "Properties", "Code", "S3Key").(string)
	want := "go run github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/cmd/kdp replay --stream {" + streamID + ".Arn} --table {Ref " +
		dataID + "} --error-table {Ref " + errorsID + "} --config " + asset + " --since"
	found := false
	for key, o := range tmpl["Outputs"].(map[string]interface{}) {
		if !strings.HasPrefix(key, "PipelineReplayCommand") {
			continue
		}
		found = true
		if got := outputValue(t, testutil.Get(o, "Value")); got != want {
			t.Errorf("command\n got %s\nwant %s", got, want)
		}
		if d := testutil.Get(o, "Description").(string); !strings.Contains(d, "run it in the CDK app's module directory") || !strings.Contains(d, "append the window's start") {
			t.Errorf("description %q", d)
		}
	}
	if !found {
		t.Errorf("no ReplayCommand output in %v", tmpl["Outputs"])
	}
}

// TestReplayCommandOmitted: no replay command for a pipeline with its own processor (kdp replay runs the default
// transform), nor without outputs.
func TestReplayCommandOmitted(t *testing.T) {
	for _, props := range []*kinesispipeline.KinesisDynamoPipelineProps{
		{ProcessorEntry: jsii.String("github.com/cdk-constructs-go/kinesis-dynamo-pipeline/examples/custom-processor/processor")},
		{OutputsEnabled: jsii.Bool(false)},
	} {
		_, _, tmpl := synth(t, props)
		outputs, _ := tmpl["Outputs"].(map[string]interface{})
		for key := range outputs {
			if strings.Contains(key, "Replay") {
				t.Errorf("output %s", key)
			}
		}
	}
}
