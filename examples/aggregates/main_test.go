package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
)

// TestAggregatesStack: the stack has the aggregate table, destroyable, and the function is told its name.
func TestAggregatesStack(t *testing.T) {
	var stack awscdk.Stack
	testutil.Must(t, func() { stack = NewAggregatesStack(testutil.NewApp(), "Aggregates", nil) })
	tmpl := testutil.Template(t, stack)
	var aggID string
	for id, r := range testutil.Resources(tmpl, "AWS::DynamoDB::GlobalTable") {
		if r["DeletionPolicy"] != "Delete" {
			t.Errorf("%s: the example must be destroyable, DeletionPolicy=%v", id, r["DeletionPolicy"])
		}
		if strings.HasPrefix(id, "PipelineAggregateTable") {
			aggID = id
		}
	}
	if aggID == "" {
		t.Fatal("no aggregate table")
	}
	env, _ := json.Marshal(testutil.Get(testutil.Properties(t, tmpl, "AWS::Lambda::Function"), "Environment", "Variables", "PIPELINE_AGGREGATE_TABLE_NAME"))
	if !strings.Contains(string(env), aggID) {
		t.Errorf("PIPELINE_AGGREGATE_TABLE_NAME = %s, want a reference to %s", env, aggID)
	}
}

// TestFeatureFlags: the app's cdk.json sets the feature flags a new `cdk init` app sets, which its tests run under.
func TestFeatureFlags(t *testing.T) {
	testutil.CheckFeatureFlags(t, "cdk.json")
}
