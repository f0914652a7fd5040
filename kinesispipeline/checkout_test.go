//go:build integration

package kinesispipeline_test

import (
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
)

// These tests use the construct from a consumer app whose go.mod replaces this module with an absolute directory: how
// a module is used before it is published, and common in monorepos.

const consumerMain = `package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
)

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	stack := awscdk.NewStack(app, jsii.String("Consumer"), nil)
	kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), %s)
	app.Synth(nil)
}
`

// TestAssetHashIgnoresCheckoutLocation: two checkouts at different absolute paths, each with a consumer app
// replacing this module by the checkout's absolute path, give the same asset hash and the same bootstrap, and the
// binary names neither path.
func TestAssetHashIgnoresCheckoutLocation(t *testing.T) {
	src := checkoutRoot(t)
	type checkout struct{ lib, app, asset string }
	base := t.TempDir()
	checkouts := []*checkout{
		{lib: filepath.Join(base, "one", "kdp"), app: filepath.Join(base, "one", "app")},
		{lib: filepath.Join(base, "second-runner", "work", "kdp"), app: filepath.Join(base, "second-runner", "work", "app")},
	}
	for _, c := range checkouts {
		copyCheckout(t, src, c.lib)
		writeConsumer(t, src, c.app, c.lib, strings.Replace(consumerMain, "%s", "nil", 1), nil)
		outdir := filepath.Join(c.app, "cdk.out")
		runIn(t, c.app, consumerEnv("CDK_OUTDIR="+outdir), "go", "run", ".")
		c.asset = functionAsset(t, outdir, "Consumer")
	}
	if a, b := filepath.Base(checkouts[0].asset), filepath.Base(checkouts[1].asset); a != b {
		t.Errorf("asset hash depends on the checkout location: %s in %s, %s in %s", a, checkouts[0].lib, b, checkouts[1].lib)
	}
	var binaries [][]byte
	for _, c := range checkouts {
		path := filepath.Join(c.asset, "bootstrap")
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		binaries = append(binaries, raw)
		for _, dir := range []string{c.lib, c.app, base} {
			if bytes.Contains(raw, []byte(dir)) {
				t.Errorf("bootstrap of %s contains the path %s", c.app, dir)
			}
		}
		info, err := buildinfo.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Path != "github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/cmd/processor" || info.Main.Replace != nil {
			t.Errorf("bootstrap build info: path %s, main module %+v (replace %+v), want the processor without a replacement",
				info.Path, info.Main, info.Main.Replace)
		}
	}
	if !bytes.Equal(binaries[0], binaries[1]) {
		t.Error("the two checkouts built different bootstraps")
	}
}

// TestSynthCLIShowsCompilerErrorOnce: a ProcessorEntry that does not compile fails `cdk synth` with the compiler's
// message once, on a line of its own, and without the Node.js "write EPIPE" stack a panic inside the bundling
// callback used to cause.
func TestSynthCLIShowsCompilerErrorOnce(t *testing.T) {
	src := checkoutRoot(t)
	cdk := filepath.Join(src, "node_modules", ".bin", "cdk")
	if _, err := os.Stat(cdk); err != nil {
		t.Fatalf("the CDK CLI is missing (run make setup): %v", err)
	}
	app := filepath.Join(t.TempDir(), "app")
	writeConsumer(t, src, app, src, strings.Replace(consumerMain, "%s",
		`&kinesispipeline.KinesisDynamoPipelineProps{ProcessorEntry: jsii.String("./broken")}`, 1), map[string]string{
		"broken/main.go": "package main\n\nfunc main() { notDefined() }\n",
		"cdk.json":       `{"app": "./app", "notices": false, "versionReporting": false, "context": {"cli-telemetry": false}}`,
	})
	runIn(t, app, consumerEnv(), "go", "build", "-o", "app", ".")

	cmd := exec.Command(cdk, "synth", "--quiet")
	cmd.Dir = app
	cmd.Env = consumerEnv("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20")
	raw, err := cmd.CombinedOutput()
	out := string(raw)
	if err == nil {
		t.Fatalf("cdk synth succeeded with an entry that does not compile:\n%s", out)
	}
	for _, tt := range []struct {
		text string
		want int
	}{
		{"broken/main.go:3:15: undefined: notDefined", 1},
		{`[Consumer/Pipeline/Function] kinesispipeline: bundling ProcessorEntry "example.com/consumer/broken" failed`, 1},
		{"EPIPE", 0},
		{"Node.js v", 0},
		{"exited abnormally", 0},
	} {
		if got := strings.Count(out, tt.text); got != tt.want {
			t.Errorf("cdk synth output holds %q %d times, want %d:\n%s", tt.text, got, tt.want, out)
		}
	}
}

// checkoutRoot is the repository's work tree.
func checkoutRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("git rev-parse: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// copyCheckout copies the work tree's files (tracked, and untracked ones not ignored) from src to dst.
func copyCheckout(t *testing.T, src, dst string) {
	t.Helper()
	out, err := exec.Command("git", "-C", src, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, p := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		raw, err := os.ReadFile(filepath.Join(src, p))
		if os.IsNotExist(err) {
			continue // deleted but not yet committed
		} else if err != nil {
			t.Fatal(err)
		}
		testutil.WriteTree(t, dst, map[string]string{p: string(raw)})
	}
}

// writeConsumer writes a consumer module at dir whose go.mod requires this module, replaced by the absolute
// directory lib, and runs go mod tidy.
func writeConsumer(t *testing.T, src, dir, lib, mainGo string, files map[string]string) {
	t.Helper()
	sum, err := os.ReadFile(filepath.Join(src, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]string{
		"go.mod": "module example.com/consumer\n\ngo 1.26.0\n\nrequire github.com/cdk-constructs-go/kinesis-dynamo-pipeline v0.0.0\n\n" +
			"replace github.com/cdk-constructs-go/kinesis-dynamo-pipeline => " + lib + "\n",
		"go.sum":  string(sum),
		"main.go": mainGo,
	}
	for k, v := range files {
		all[k] = v
	}
	testutil.WriteTree(t, dir, all)
	runIn(t, dir, consumerEnv(), "go", "mod", "tidy")
}

func consumerEnv(extra ...string) []string {
	return append(append(os.Environ(), "GOWORK=off", "GOFLAGS="), extra...)
}

func runIn(t *testing.T, dir string, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir, cmd.Env = dir, env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s (in %s): %v\n%s", strings.Join(args, " "), dir, err, out)
	}
}

// functionAsset returns the asset directory of the only Lambda function in stack's template under outdir.
func functionAsset(t *testing.T, outdir, stack string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(outdir, stack+".template.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tmpl struct {
		Resources map[string]struct {
			Type       string
			Properties struct{ Code struct{ S3Key string } }
		}
	}
	if err := json.Unmarshal(raw, &tmpl); err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, r := range tmpl.Resources {
		if r.Type == "AWS::Lambda::Function" {
			dirs = append(dirs, filepath.Join(outdir, "asset."+strings.TrimSuffix(r.Properties.Code.S3Key, ".zip")))
		}
	}
	if len(dirs) != 1 {
		t.Fatalf("want one function in %s, found %d", stack, len(dirs))
	}
	return dirs[0]
}
