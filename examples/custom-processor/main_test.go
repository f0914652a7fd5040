package main

import (
	"debug/elf"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
)

// TestEntryBundles builds the example's processor for real, next to a default pipeline in the same stack: each gets
// its own asset, and the example's holds an arm64 ELF bootstrap.
func TestEntryBundles(t *testing.T) {
	app, out := testutil.BundlingApp(t)
	testutil.Must(t, func() {
		stack := NewCustomProcessorStack(app, "Custom", nil)
		kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Standard"), nil)
		app.Synth(nil)
	})
	assets := testutil.FunctionAssets(t, out, "Custom")
	custom, standard := testutil.AssetOf(t, assets, "PipelineFunction"), testutil.AssetOf(t, assets, "StandardFunction")
	if custom == standard {
		t.Fatalf("the custom and the default processor share one asset %s", custom)
	}
	testutil.CheckBootstrap(t, custom, elf.EM_AARCH64)
	if _, err := os.Stat(filepath.Join(custom, "pipeline.json")); err != nil {
		t.Errorf("custom asset lacks the configuration file: %v", err)
	}
}

// TestFeatureFlags: the app's cdk.json sets the feature flags a new `cdk init` app sets, which its tests run under.
func TestFeatureFlags(t *testing.T) {
	testutil.CheckFeatureFlags(t, "cdk.json")
}
