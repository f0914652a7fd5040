//go:build integration

package kinesispipeline_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSynthCLIWithTableBilling: under the CDK CLI, the scratch app that checks TableBilling leaves the cloud assembly
// alone (an app synthesizes itself into CDK_OUTDIR at exit unless told not to): cdk.out holds the consumer's stack,
// with the table's write ceiling, and nothing else.
func TestSynthCLIWithTableBilling(t *testing.T) {
	src := checkoutRoot(t)
	cdk := filepath.Join(src, "node_modules", ".bin", "cdk")
	if _, err := os.Stat(cdk); err != nil {
		t.Fatalf("the CDK CLI is missing (run make setup): %v", err)
	}
	app := filepath.Join(t.TempDir(), "app")
	writeConsumer(t, src, app, src, strings.Replace(strings.Replace(consumerMain, "%s",
		`&kinesispipeline.KinesisDynamoPipelineProps{TableBilling: awsdynamodb.Billing_OnDemand(&awsdynamodb.MaxThroughputProps{MaxWriteRequestUnits: jsii.Number(700)})}`, 1),
		`"github.com/aws/jsii-runtime-go"`, `"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/jsii-runtime-go"`, 1), map[string]string{
		"cdk.json": `{"app": "./app", "notices": false, "versionReporting": false, "context": {"cli-telemetry": false}}`,
	})
	runIn(t, app, consumerEnv(), "go", "build", "-o", "app", ".")

	cmd := exec.Command(cdk, "synth", "--quiet")
	cmd.Dir = app
	cmd.Env = consumerEnv("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cdk synth: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(app, "cdk.out", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct{ Artifacts map[string]interface{} }
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatal(err)
	}
	if _, ok := manifest.Artifacts["Consumer"]; !ok || manifest.Artifacts["Scratch"] != nil {
		t.Errorf("cdk.out/manifest.json artifacts: want the Consumer stack and no scratch stack, got %v", keys(manifest.Artifacts))
	}
	tmpl, err := os.ReadFile(filepath.Join(app, "cdk.out", "Consumer.template.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(tmpl), `"MaxWriteRequestUnits": 700`) {
		t.Error("the consumer's template lacks the table's write ceiling")
	}
	if _, err := os.Stat(filepath.Join(app, "cdk.out", "Scratch.template.json")); err == nil {
		t.Error("the scratch stack was synthesized into cdk.out")
	}
}

func keys(m map[string]interface{}) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
