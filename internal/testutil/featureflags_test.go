//go:build integration

package testutil

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestRecommendedFeatureFlagsMatchTheCLI: the flags tests run under are the ones the pinned CDK CLI writes into a new
// app's cdk.json (after an npm bump, run scripts/feature-flags.sh).
func TestRecommendedFeatureFlagsMatchTheCLI(t *testing.T) {
	path := filepath.Join("..", "..", "node_modules", "aws-cdk", "lib", "init-templates", ".recommended-feature-flags.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the CDK CLI's recommended flags: %v (run make setup)", err)
	}
	var want map[string]interface{}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if got := RecommendedFeatureFlags(); !reflect.DeepEqual(got, want) {
		for k, v := range want {
			if !reflect.DeepEqual(got[k], v) {
				t.Errorf("%s: testutil has %v, the CLI recommends %v", k, got[k], v)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("%s: testutil sets it, the CLI does not recommend it", k)
			}
		}
		t.Error("run scripts/feature-flags.sh")
	}
}
