package main

import (
	"debug/elf"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
)

// TestEntryBundles builds the example's processor for real, next to a default pipeline in the same stack: each gets
// its own asset, and the example's holds an arm64 ELF bootstrap.
func TestEntryBundles(t *testing.T) {
	out := t.TempDir()
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(out)})
	var stack awscdk.Stack
	testutil.Must(t, func() {
		stack = NewCustomProcessorStack(app, "Custom", nil)
		kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Standard"), nil)
		app.Synth(nil)
	})
	raw, err := os.ReadFile(filepath.Join(out, "Custom.template.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tmpl map[string]interface{}
	if err := json.Unmarshal(raw, &tmpl); err != nil {
		t.Fatal(err)
	}
	assets := map[string]string{}
	for id, fn := range testutil.Resources(tmpl, "AWS::Lambda::Function") {
		key, _ := testutil.Get(fn, "Properties", "Code", "S3Key").(string)
		assets[id] = strings.TrimSuffix(key, ".zip")
	}
	var custom, standard string
	for id, hash := range assets {
		if strings.HasPrefix(id, "PipelineFunction") {
			custom = hash
		} else if strings.HasPrefix(id, "StandardFunction") {
			standard = hash
		}
	}
	if custom == "" || standard == "" || custom == standard {
		t.Fatalf("want distinct assets for the custom and the default processor, got %v", assets)
	}
	f, err := elf.Open(filepath.Join(out, "asset."+custom, "bootstrap"))
	if err != nil {
		t.Fatalf("custom asset: %v", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 {
		t.Errorf("custom bootstrap machine %v, want arm64", f.Machine)
	}
	if _, err := os.Stat(filepath.Join(out, "asset."+custom, "pipeline.json")); err != nil {
		t.Errorf("custom asset lacks the configuration file: %v", err)
	}
}
