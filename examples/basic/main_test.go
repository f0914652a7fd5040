package main

import (
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
)

// TestBasicStack checks the example the way a user tests their own stack: a template assertion with bundling off.
func TestBasicStack(t *testing.T) {
	var stack awscdk.Stack
	testutil.Must(t, func() { stack = NewBasicStack(testutil.NewApp(), "Basic", nil) })
	tmpl := testutil.Template(t, stack)
	outputs, _ := tmpl["Outputs"].(map[string]interface{})
	for _, output := range []string{"StreamName", "TableName", "ErrorTableName", "DeadLetterQueueUrl", "RedriveDeadLetterQueueCommand", "SelfTestFunctionName"} {
		found := false
		for id := range outputs {
			found = found || strings.HasPrefix(id, "Pipeline"+output)
		}
		if !found {
			t.Errorf("output %s is missing, got %v", output, outputs)
		}
	}
	if n := len(testutil.Resources(tmpl, "Custom::KdpSelfTest")); n != 1 {
		t.Errorf("%d self-test resources, want 1: the example proves its deployment", n)
	}
	for _, typ := range []string{"AWS::Kinesis::Stream", "AWS::DynamoDB::GlobalTable", "AWS::SQS::Queue"} {
		for id, r := range testutil.Resources(tmpl, typ) {
			if r["DeletionPolicy"] != "Delete" {
				t.Errorf("%s: the example must be destroyable, DeletionPolicy=%v", id, r["DeletionPolicy"])
			}
		}
	}
}

// TestFeatureFlags: the app's cdk.json sets the feature flags a new `cdk init` app sets, which its tests run under.
func TestFeatureFlags(t *testing.T) {
	testutil.CheckFeatureFlags(t, "cdk.json")
}
