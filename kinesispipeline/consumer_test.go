//go:build integration

package kinesispipeline_test

import (
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

const modulePath = "github.com/cdk-constructs-go/kinesis-dynamo-pipeline"

// trackedFile is a file of the repository's work tree, for the module zip.
type trackedFile struct{ root, path string }

func (f trackedFile) Path() string                 { return f.path }
func (f trackedFile) Lstat() (os.FileInfo, error)  { return os.Lstat(filepath.Join(f.root, f.path)) }
func (f trackedFile) Open() (io.ReadCloser, error) { return os.Open(filepath.Join(f.root, f.path)) }

// TestConsumerModule uses the module the way a user does: `go get` from a module proxy (a file:// proxy holding
// this repository's tracked files under a fresh pseudo-version), `go mod tidy`, then a synth with real bundling.
// It proves the published module is complete and that a consumer's go.sum covers the processor's build.
func TestConsumerModule(t *testing.T) {
	root := repoRoot(t)
	version := pseudoVersion(t)
	proxy := t.TempDir()
	writeProxy(t, root, proxy, version)

	consumer := t.TempDir()
	writeFile(t, filepath.Join(consumer, "go.mod"), "module example.com/consumer\n\ngo 1.26\n")
	writeFile(t, filepath.Join(consumer, "main.go"), `package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"`+modulePath+`/kinesispipeline"
)

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	stack := awscdk.NewStack(app, jsii.String("Consumer"), nil)
	kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), nil)
	app.Synth(nil)
}
`)
	goproxy := "file://" + filepath.ToSlash(proxy)
	if upstream := goEnv(t, "GOPROXY"); upstream != "" && upstream != "off" {
		goproxy += "," + upstream
	}
	outdir := filepath.Join(consumer, "cdk.out")
	env := append(os.Environ(),
		"GOPROXY="+goproxy,
		"GONOSUMDB="+modulePath,
		"GOWORK=off",
		"GOFLAGS=",
		"CDK_OUTDIR="+outdir,
	)
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir, cmd.Env = consumer, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("go", "get", modulePath+"@"+version)
	run("go", "mod", "tidy")
	run("go", "run", ".")

	// README's kdp local command, as written, from the tidy app: it builds (no "missing go.sum entry") and runs, here
	// to its one-line usage error about a cloud assembly that is not there; go run reports the program's exit status
	// 2 on a line of its own (and exits 1 itself).
	kdp := exec.Command("go", "run", modulePath+"/runtime/cmd/kdp", "local", "--cdk-out", "nowhere", "--stack", "X")
	kdp.Dir, kdp.Env = consumer, env
	var kdpOut, kdpErr strings.Builder
	kdp.Stdout, kdp.Stderr = &kdpOut, &kdpErr
	if err := kdp.Run(); err == nil {
		t.Errorf("kdp local with no cloud assembly succeeded")
	}
	lines := strings.Split(strings.TrimSuffix(kdpErr.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "kdp local: nowhere is not a cloud assembly (run cdk synth first)") ||
		lines[1] != "exit status 2" {
		t.Errorf("go run kdp local: stderr, want kdp's one line naming the missing cdk.out, then exit status 2:\n%s", kdpErr.String())
	}
	if kdpOut.Len() != 0 {
		t.Errorf("kdp local stdout: %q", kdpOut.String())
	}

	// The stack output's redrive command names the version the app was built with, which the proxy serves: it runs
	// anywhere, here from a directory outside any module.
	command := redriveCommandOf(t, filepath.Join(outdir, "Consumer.template.json"))
	if want := "go run " + modulePath + "/runtime/cmd/redrive@" + version; strings.Join(command, " ") != want {
		t.Errorf("redrive command %q, want %q", command, want)
	}
	elsewhere := exec.Command(command[0], append(command[1:], "help")...)
	elsewhere.Dir, elsewhere.Env = t.TempDir(), env
	if out, err := elsewhere.CombinedOutput(); err != nil || !strings.Contains(string(out), "usage:") {
		t.Errorf("%s help: %v\n%s", strings.Join(command, " "), err, out)
	}

	assets, err := filepath.Glob(filepath.Join(outdir, "asset.*", "bootstrap"))
	if err != nil || len(assets) != 1 {
		t.Fatalf("want one bundled bootstrap in %s, got %v (%v)", outdir, assets, err)
	}
	f, err := elf.Open(assets[0])
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 {
		t.Errorf("bootstrap machine %v, want arm64", f.Machine)
	}
}

// redriveCommandOf returns the start of the error-table redrive command in a synthesized template, up to the mode:
// ["go", "run", "<package>[@version]"].
func redriveCommandOf(t *testing.T, templatePath string) []string {
	t.Helper()
	return outputCommandOf(t, templatePath, "PipelineRedriveErrorTableCommand", " errors ")
}

// replayCommandOf returns the start of the ReplayCommand output in a synthesized template, up to "replay":
// ["go", "run", "<kdp package>[@version]", "replay"].
func replayCommandOf(t *testing.T, templatePath string) []string {
	t.Helper()
	return append(outputCommandOf(t, templatePath, "PipelineReplayCommand", " replay "), "replay")
}

// outputCommandOf returns the words before sep in the first part of the Fn::Join of the template's output whose
// logical ID starts with outputPrefix.
func outputCommandOf(t *testing.T, templatePath, outputPrefix, sep string) []string {
	t.Helper()
	b, err := os.ReadFile(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	var tmpl struct {
		Outputs map[string]struct {
			Value struct {
				Join []json.RawMessage `json:"Fn::Join"`
			}
		}
	}
	if err := json.Unmarshal(b, &tmpl); err != nil {
		t.Fatal(err)
	}
	for id, o := range tmpl.Outputs {
		if !strings.HasPrefix(id, outputPrefix) || len(o.Value.Join) != 2 {
			continue
		}
		var parts []json.RawMessage
		var first string
		if err := json.Unmarshal(o.Value.Join[1], &parts); err != nil || len(parts) == 0 || json.Unmarshal(parts[0], &first) != nil {
			t.Fatalf("output %s: %s", id, o.Value.Join[1])
		}
		head, _, ok := strings.Cut(first, sep)
		if !ok {
			t.Fatalf("output %s starts %q", id, first)
		}
		return strings.Fields(head)
	}
	t.Fatalf("%s has no %s output", templatePath, outputPrefix)
	return nil
}

// TestConsumerReplaceRedrive uses the module the way a user does before it is published, or in a monorepo: through
// a replace directive to a directory (go.mod then requires the zero pseudo-version, which no proxy serves). After a
// plain `go mod tidy`, the stack output's redrive command must run as written in the app's directory: no version
// the proxy refuses, and no "missing go.sum entry" for the command's AWS clients.
func TestConsumerReplaceRedrive(t *testing.T) {
	root := repoRoot(t)
	consumer := t.TempDir()
	writeFile(t, filepath.Join(consumer, "go.mod"), "module example.com/consumer\n\ngo 1.26\n\nrequire "+modulePath+
		" v0.0.0-00010101000000-000000000000\n\nreplace "+modulePath+" => "+root+"\n")
	writeFile(t, filepath.Join(consumer, "main.go"), `package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"`+modulePath+`/kinesispipeline"
)

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(&awscdk.AppProps{Context: &map[string]interface{}{"aws:cdk:bundling-stacks": []interface{}{}}})
	stack := awscdk.NewStack(app, jsii.String("Consumer"), nil)
	kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), nil)
	app.Synth(nil)
}
`)
	outdir := filepath.Join(consumer, "cdk.out")
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=", "CDK_OUTDIR="+outdir)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir, cmd.Env = consumer, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("go", "mod", "tidy")
	run("go", "run", ".")
	command := redriveCommandOf(t, filepath.Join(outdir, "Consumer.template.json"))
	if want := "go run " + modulePath + "/runtime/cmd/redrive"; strings.Join(command, " ") != want {
		t.Fatalf("redrive command %q, want %q (no version: the module comes through a replace)", command, want)
	}
	if out := run(append(command, "help")...); !strings.Contains(out, "usage:") {
		t.Errorf("%s help printed:\n%s", strings.Join(command, " "), out)
	}
	replay := replayCommandOf(t, filepath.Join(outdir, "Consumer.template.json"))
	if out := run(append(replay, "-h")...); !strings.Contains(out, "usage: kdp replay") {
		t.Errorf("%s -h printed:\n%s", strings.Join(replay, " "), out)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("git rev-parse: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func goEnv(t *testing.T, key string) string {
	t.Helper()
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", key, err)
	}
	return strings.TrimSpace(string(out))
}

// pseudoVersion returns a version no earlier run used: the module cache never refreshes a version it holds.
func pseudoVersion(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("v0.0.0-%s-%s", time.Now().UTC().Format("20060102150405"), hex.EncodeToString(b))
}

// writeProxy lays out a GOPROXY directory serving the repository's tracked files as modulePath@version.
func writeProxy(t *testing.T, root, proxy, version string) {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	var files []modzip.File
	for _, p := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil { // skip files deleted but not yet committed
			files = append(files, trackedFile{root: root, path: p})
		}
	}
	dir := filepath.Join(proxy, modulePath, "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	zf, err := os.Create(filepath.Join(dir, version+".zip"))
	if err != nil {
		t.Fatal(err)
	}
	if err := modzip.Create(zf, module.Version{Path: modulePath, Version: version}, files); err != nil {
		t.Fatalf("module zip: %v", err)
	}
	if err := zf.Close(); err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, version+".mod"), string(gomod))
	writeFile(t, filepath.Join(dir, version+".info"), fmt.Sprintf(`{"Version":%q,"Time":%q}`, version, time.Now().UTC().Format(time.RFC3339)))
	writeFile(t, filepath.Join(dir, "list"), version+"\n")
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
