package kinesispipeline_test

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// These tests bundle for real: they compile the default processor with the local Go toolchain.

type bundledPipeline struct {
	id    string
	props *kinesispipeline.KinesisDynamoPipelineProps
}

// bundle synthesizes one stack holding the pipelines, with bundling on, and returns each pipeline's asset directory.
func bundle(t *testing.T, pipelines ...bundledPipeline) map[string]string {
	t.Helper()
	app, out := testutil.BundlingApp(t)
	stack := awscdk.NewStack(app, jsii.String("Bundled"), nil)
	testutil.Must(t, func() {
		for _, p := range pipelines {
			kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String(p.id), p.props)
		}
		app.Synth(nil)
	})
	functions := testutil.FunctionAssets(t, out, "Bundled")
	assets := map[string]string{}
	for _, p := range pipelines {
		assets[p.id] = testutil.AssetOf(t, functions, p.id+"Function")
	}
	return assets
}

func TestBundlingBuildsStaticBootstrapPerArchitecture(t *testing.T) {
	assets := bundle(t,
		bundledPipeline{"Arm", nil},
		bundledPipeline{"Amd", &kinesispipeline.KinesisDynamoPipelineProps{Architecture: awslambda.Architecture_X86_64()}},
	)
	if assets["Arm"] == assets["Amd"] {
		t.Fatalf("arm64 and amd64 pipelines share one asset %s", assets["Arm"])
	}
	arm := testutil.CheckBootstrap(t, assets["Arm"], elf.EM_AARCH64)
	amd := testutil.CheckBootstrap(t, assets["Amd"], elf.EM_X86_64)
	if bytes.Equal(arm, amd) {
		t.Error("both assets hold the same binary")
	}
	if size := len(arm); size > 10<<20 {
		t.Errorf("arm64 bootstrap is %d bytes, want under 10 MB", size)
	}

	for id, dir := range assets {
		raw, err := os.ReadFile(filepath.Join(dir, processor.ConfigFileName))
		if err != nil {
			t.Fatalf("%s: asset has no %s: %v", id, processor.ConfigFileName, err)
		}
		cfg, err := processor.ParseConfig(raw)
		if err != nil {
			t.Fatalf("%s: config does not parse: %v", id, err)
		}
		if cfg.PartitionKey != processor.DefaultConfig().PartitionKey {
			t.Errorf("%s: config %+v, want the default", id, cfg)
		}
	}
}

func TestBundlingIsReproducible(t *testing.T) {
	first := bundle(t, bundledPipeline{"Pipeline", nil})["Pipeline"]
	second := bundle(t, bundledPipeline{"Pipeline", nil})["Pipeline"]
	if filepath.Base(first) != filepath.Base(second) {
		t.Errorf("two synths of the same code gave different asset hashes: %s and %s", filepath.Base(first), filepath.Base(second))
	}
	a, b := testutil.CheckBootstrap(t, first, elf.EM_AARCH64), testutil.CheckBootstrap(t, second, elf.EM_AARCH64)
	if !bytes.Equal(a, b) {
		t.Error("two builds of the same code gave different binaries")
	}
}

func TestBundlingKeepsConfigurationsApart(t *testing.T) {
	assets := bundle(t,
		bundledPipeline{"Plain", nil},
		bundledPipeline{"Keyed", &kinesispipeline.KinesisDynamoPipelineProps{
			PartitionKey: &awsdynamodb.Attribute{Name: jsii.String("pk"), Type: awsdynamodb.AttributeType_STRING},
		}},
		bundledPipeline{"Computed", &kinesispipeline.KinesisDynamoPipelineProps{Transform: &kinesispipeline.TransformProps{
			Computed: &[]*kinesispipeline.ComputedAttribute{{Name: jsii.String("Double"), Expression: jsii.String("Value * 2")}},
		}}},
	)
	if assets["Plain"] == assets["Keyed"] || assets["Plain"] == assets["Computed"] {
		t.Fatalf("pipelines with different processor configurations share an asset: %v", assets)
	}
	raw, err := os.ReadFile(filepath.Join(assets["Keyed"], processor.ConfigFileName))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"name": "pk"`) {
		t.Errorf("keyed pipeline's config does not name its key: %s", raw)
	}

	// Expressions need expr; without them, the bundler leaves it out (processor.NoExprBuildTag).
	for id, wantExpr := range map[string]bool{"Plain": false, "Keyed": false, "Computed": true} {
		info, err := buildinfo.ReadFile(filepath.Join(assets[id], "bootstrap"))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		hasExpr := false
		for _, dep := range info.Deps {
			hasExpr = hasExpr || dep.Path == "github.com/expr-lang/expr"
		}
		if hasExpr != wantExpr {
			t.Errorf("%s: bootstrap links expr = %v, want %v", id, hasExpr, wantExpr)
		}
	}
}

func TestBundlingWithoutGoPanicsWithTheFix(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	app, _ := testutil.BundlingApp(t)
	stack := awscdk.NewStack(app, jsii.String("NoGo"), nil)
	msg := testutil.PanicMessage(t, func() {
		kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), nil)
		app.Synth(nil) // a failed build is a validation error: synth fails
	})
	for _, want := range []string{"bundling the processor failed", "the go command is not on PATH", "install Go"} {
		if !strings.Contains(msg, want) {
			t.Errorf("panic message must contain %q, got:\n%s", want, msg)
		}
	}
}
