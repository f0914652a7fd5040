package main

import (
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
)

// TestBasicStack checks the example the way a user tests their own stack: a template assertion with bundling off.
func TestBasicStack(t *testing.T) {
	var stack awscdk.Stack
	testutil.Must(t, func() { stack = NewBasicStack(testutil.NewApp(), "Basic", nil) })
	tmpl := testutil.Template(t, stack)
	for _, output := range []string{"StreamName", "TableName", "ErrorTableName", "DeadLetterQueueUrl"} {
		if testutil.Get(tmpl, "Outputs", output, "Value") == nil {
			t.Errorf("output %s is missing", output)
		}
	}
	for _, typ := range []string{"AWS::Kinesis::Stream", "AWS::DynamoDB::GlobalTable", "AWS::SQS::Queue"} {
		for id, r := range testutil.Resources(tmpl, typ) {
			if r["DeletionPolicy"] != "Delete" {
				t.Errorf("%s: the example must be destroyable, DeletionPolicy=%v", id, r["DeletionPolicy"])
			}
		}
	}
}
