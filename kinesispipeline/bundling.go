package kinesispipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"go/version"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3assets"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// DefaultProcessorPackage is the import path of the default processor, built into the function's `bootstrap`.
const DefaultProcessorPackage = "github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/cmd/processor"

// fallbackImage is only named because CDK requires an image; goBundler never hands over to Docker.
const fallbackImage = "golang:1.26"

// goBundler compiles a Go main package into `bootstrap` on the synthesizing machine, next to the processor's
// configuration file. CDK calls TryBundle once per distinct asset.
type goBundler struct {
	prop   string // the prop that named the package, for error messages; empty for the default processor
	name   string // what is built, for error messages, when not the processor (the self-test function)
	pkg    string // import path of the main package to build
	dir    string // directory to build in: inside the module that resolves pkg
	goarch string // "arm64" or "amd64"
	tags   string // build tags, comma-separated
	config []byte // content of processor.ConfigFileName
	// configFile names the configuration file when it is not processor.ConfigFileName (the self-test's).
	configFile string

	failure string // why the last TryBundle failed; empty after a success
}

var _ awscdk.ILocalBundling = (*goBundler)(nil)

// TryBundle builds the processor into outputDir. It never returns false: falling back to Docker would fail on
// machines without it with a message about the Docker daemon, hiding the real problem. It never panics either: a
// panic inside this jsii callback reaches the user behind ~26 lines of Node.js "write EPIPE" noise. A failed build
// leaves a note in outputDir (CDK refuses an empty bundle) and is reported by processorAsset.Bind as a validation
// error, which fails synth with the compiler's message alone.
func (b *goBundler) TryBundle(outputDir *string, _ *awscdk.BundlingOptions) *bool {
	if err := b.bundle(*outputDir); err != nil {
		what := "the processor"
		if b.name != "" {
			what = b.name
		}
		if b.prop != "" {
			what = fmt.Sprintf("%s %q", b.prop, b.pkg)
		}
		b.failure = fmt.Sprintf("kinesispipeline: bundling %s failed: %v", what, err)
		note := filepath.Join(*outputDir, bundleFailedFile)
		if werr := os.WriteFile(note, []byte(b.failure+"\n"), 0o644); werr != nil {
			b.failure += fmt.Sprintf(" (and writing %s: %v)", note, werr)
		}
	}
	return jsii.Bool(true)
}

// bundleFailedFile is what a failed build leaves in the asset directory instead of bootstrap.
const bundleFailedFile = "BUNDLING-FAILED.txt"

func (b *goBundler) bundle(outputDir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command is not on PATH; install Go 1.26 or later from https://go.dev/dl and synthesize again: %w", err)
	}
	root, err := moduleRoot(goBin, b.dir)
	if err != nil {
		return err
	}
	if b.prop == "" { // a user's own entry is part of their module, never under vendor/
		if err := checkVendor(root, b.pkg); err != nil {
			return err
		}
	}
	env := b.env()
	work, err := b.workspace(goBin, root, env)
	if err != nil {
		return err
	}
	if work != "" {
		defer os.RemoveAll(filepath.Dir(work))
		env = append(env, "GOWORK="+work)
	}
	cmd := exec.Command(goBin, "build", "-trimpath", "-buildvcs=false", "-tags", b.tags,
		"-ldflags", "-s -w", "-o", filepath.Join(outputDir, "bootstrap"), b.pkg)
	cmd.Dir = b.dir
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		where := b.dir
		if work != "" {
			where += ", in a workspace of the module and its replacements by absolute directories"
		}
		return fmt.Errorf("go build %s (GOOS=linux GOARCH=%s, in %s): %w\n%s", b.pkg, b.goarch, where, err,
			strings.TrimSpace(out.String()))
	}
	configFile := processor.ConfigFileName
	if b.configFile != "" {
		configFile = b.configFile
	}
	if err := os.WriteFile(filepath.Join(outputDir, configFile), b.config, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", configFile, err)
	}
	return nil
}

// env pins everything that changes the binary, so the same source gives the same bytes (and asset hash).
func (b *goBundler) env() []string {
	return append(os.Environ(), "GOOS=linux", "GOARCH="+b.goarch, "CGO_ENABLED=0", "GOAMD64=v1", "GOARM64=v8.0",
		"GOFLAGS=")
}

// goModJSON is the part of `go mod edit -json` the bundler reads.
type goModJSON struct {
	Module    struct{ Path string }
	Go        string
	Toolchain string
	Replace   []struct {
		Old struct{ Path string }
		New struct{ Path, Version string }
	}
}

func readGoMod(goBin, gomod string) (goModJSON, error) {
	var m goModJSON
	out, err := exec.Command(goBin, "mod", "edit", "-json", gomod).Output()
	if err != nil {
		return m, fmt.Errorf("go mod edit -json %s: %w", gomod, err)
	}
	if err := json.Unmarshal(out, &m); err != nil {
		return m, fmt.Errorf("go mod edit -json %s: %w", gomod, err)
	}
	return m, nil
}

// workspace makes the build independent of where replaced modules sit. A module the build uses through a `replace`
// with an absolute directory (how a module is used before it is published, and common in monorepos) has that
// directory written into the binary's build information, which -trimpath does not remove: the same code would give
// another asset hash in every checkout location. In a workspace (go.work) listing the module root and those
// directories, the build information names them by module path only. workspace writes such a go.work into a new
// temporary directory and returns its path, or "" when the build does not need one: no absolute directory
// replacement among the modules it uses, a workspace already in effect (the user's go.work decides), or vendoring.
func (b *goBundler) workspace(goBin, root string, env []string) (string, error) {
	if _, err := os.Stat(filepath.Join(root, "vendor", "modules.txt")); err == nil {
		return "", nil
	}
	gowork := exec.Command(goBin, "env", "GOWORK")
	gowork.Dir, gowork.Env = b.dir, env
	if out, err := gowork.Output(); err != nil {
		return "", fmt.Errorf("go env GOWORK in %s: %w", b.dir, err)
	} else if w := strings.TrimSpace(string(out)); w != "" && w != "off" {
		return "", nil
	}
	main, err := readGoMod(goBin, filepath.Join(root, "go.mod"))
	if err != nil {
		return "", err
	}
	replaced := map[string]string{} // module path -> absolute directory
	for _, r := range main.Replace {
		if r.New.Version == "" && filepath.IsAbs(r.New.Path) {
			replaced[r.Old.Path] = filepath.Clean(r.New.Path)
		}
	}
	if len(replaced) == 0 {
		return "", nil
	}
	// Only the replaced modules the build uses: a workspace module's requirements all count.
	list := exec.Command(goBin, "list", "-deps", "-tags", b.tags, "-f", "{{with .Module}}{{.Path}}{{end}}", b.pkg)
	list.Dir, list.Env = b.dir, env
	var stderr bytes.Buffer
	list.Stderr = &stderr
	out, err := list.Output()
	if err != nil {
		return "", fmt.Errorf("go list -deps %s (in %s): %w\n%s", b.pkg, b.dir, err, strings.TrimSpace(stderr.String()))
	}
	use := []string{root}
	seen := map[string]bool{}
	for _, mod := range strings.Fields(string(out)) {
		if dir, ok := replaced[mod]; ok && !seen[mod] {
			seen[mod] = true
			use = append(use, dir)
		}
	}
	if len(use) == 1 {
		return "", nil
	}
	// The go line sets the binary's default GODEBUG settings and the toolchain line the compiler: the module root's
	// decide, as without a workspace (its go line is at least every dependency's, or the build would fail).
	var work strings.Builder
	if main.Go != "" {
		fmt.Fprintf(&work, "go %s\n", main.Go)
	}
	if main.Toolchain != "" && (main.Go == "" || version.Compare(main.Toolchain, "go"+main.Go) > 0) {
		fmt.Fprintf(&work, "toolchain %s\n", main.Toolchain)
	}
	for _, dir := range use {
		fmt.Fprintf(&work, "use %s\n", strconv.Quote(dir))
	}
	tmp, err := os.MkdirTemp("", "kinesispipeline-work-")
	if err != nil {
		return "", fmt.Errorf("workspace for %s: %w", b.pkg, err)
	}
	path := filepath.Join(tmp, "go.work")
	if err := os.WriteFile(path, []byte(work.String()), 0o644); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("workspace for %s: %w", b.pkg, err)
	}
	return path, nil
}

func moduleRoot(goBin, dir string) (string, error) {
	cmd := exec.Command(goBin, "env", "GOMOD")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD in %s: %w", dir, err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("%s is not inside a Go module; run cdk synth from your CDK app's module (the one whose go.mod requires %s)",
			dir, "github.com/cdk-constructs-go/kinesis-dynamo-pipeline")
	}
	return filepath.Dir(gomod), nil
}

// checkVendor fails early for a module that vendors its dependencies without the package to build: `go mod vendor`
// only copies imported packages, and the processor's main package is never imported.
func checkVendor(root, pkg string) error {
	if _, err := os.Stat(filepath.Join(root, "vendor", "modules.txt")); err != nil {
		return nil
	}
	if _, err := os.Stat(filepath.Join(root, "vendor", filepath.FromSlash(pkg))); err == nil {
		return nil
	}
	return fmt.Errorf("the module at %s vendors its dependencies, and vendor/ lacks %s: go mod vendor copies only "+
		"imported packages and a main package is never imported; remove vendor/ so the build uses the module cache "+
		"(go mod download)", root, pkg)
}

// processorCode returns the function's code: the bundled processor plus its configuration file.
func processorCode(b *goBundler) awslambda.Code {
	sum := sha256.Sum256(b.config)
	a := &processorAsset{bundler: b}
	awslambda.NewAssetCode_Override(a, jsii.String(b.dir), &awss3assets.AssetOptions{
		AssetHashType: awscdk.AssetHashType_OUTPUT,
		Bundling: &awscdk.BundlingOptions{
			Image: awscdk.DockerImage_FromRegistry(jsii.String(fallbackImage)),
			Local: b,
			// CDK caches staged assets by source path and bundling options and cannot see into Local: everything that
			// makes this build different goes here, or two pipelines would silently share one binary.
			Environment: &map[string]*string{
				"GOOS":                       jsii.String("linux"),
				"GOARCH":                     jsii.String(b.goarch),
				"PIPELINE_PROCESSOR_PACKAGE": jsii.String(b.pkg),
				"PIPELINE_BUILD_TAGS":        jsii.String(b.tags),
				"PIPELINE_CONFIG_SHA256":     jsii.String(hex.EncodeToString(sum[:])),
			},
		},
	})
	return a
}

// processorAsset is the function's asset code. Binding it to the function stages the asset (CDK calls the bundler
// then); a failed build becomes a validation error on the function, so synth fails with the compiler's message once
// and without a panic inside a jsii callback.
type processorAsset struct {
	awslambda.AssetCode
	bundler *goBundler
}

// Bind stages the asset for scope (the function) and reports a failed build as a validation error of scope.
func (a *processorAsset) Bind(scope constructs.Construct) *awslambda.CodeConfig {
	cfg := a.AssetCode.Bind(scope)
	if msg := a.bundler.failure; msg != "" {
		scope.Node().AddValidation(&bundleFailure{message: msg})
	}
	return cfg
}

// bundleFailure is the validation error of a failed build.
type bundleFailure struct{ message string }

var _ constructs.IValidation = (*bundleFailure)(nil)

// Validate returns the build's failure.
func (f *bundleFailure) Validate() *[]*string { return &[]*string{jsii.String(f.message)} }

// resolveEntry finds the main package a ProcessorEntry names: a directory (absolute, or relative to the working
// directory, where the CDK app runs) or an import path resolvable from the working directory. It returns the bundler
// for it, building from the package's own module root, or a problem naming the prop.
func resolveEntry(entry, goarch, tags string, config []byte) (*goBundler, string) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, "ProcessorEntry: the go command is not on PATH; install Go to build your processor"
	}
	dir, arg := "", entry
	if filepath.IsAbs(entry) || entry == "." || entry == ".." || strings.HasPrefix(entry, "./") || strings.HasPrefix(entry, "../") {
		abs, err := filepath.Abs(entry)
		if err != nil {
			return nil, fmt.Sprintf("ProcessorEntry: %q: %v", entry, err)
		}
		if info, err := os.Stat(abs); err != nil || !info.IsDir() {
			return nil, fmt.Sprintf("ProcessorEntry: %q does not exist or is not a directory (relative paths start at %s)", entry, mustGetwd())
		}
		dir, arg = abs, "."
	}
	cmd := exec.Command(goBin, "list", "-e", "-f", "{{.Name}}\t{{.ImportPath}}\t{{if .Module}}{{.Module.Dir}}{{end}}\t{{if .Error}}{{.Error}}{{end}}", arg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Sprintf("ProcessorEntry: %q cannot be resolved: %v: %s", entry, err, strings.TrimSpace(stderr.String()))
	}
	fields := strings.SplitN(strings.TrimRight(string(out), "\n"), "\t", 4)
	if len(fields) != 4 {
		return nil, fmt.Sprintf("ProcessorEntry: %q: unexpected go list output %q", entry, out)
	}
	name, pkg, moduleDir, listErr := fields[0], fields[1], fields[2], fields[3]
	switch {
	case listErr != "":
		return nil, fmt.Sprintf("ProcessorEntry: %q is not a buildable package: %s", entry, listErr)
	case name != "main":
		return nil, fmt.Sprintf("ProcessorEntry: %q is package %s, not a main package (it must be `package main` and call processor.Start)", entry, name)
	case moduleDir == "":
		return nil, fmt.Sprintf("ProcessorEntry: %q is not inside a Go module", entry)
	}
	return &goBundler{prop: "ProcessorEntry", pkg: pkg, dir: moduleDir, goarch: goarch, tags: tags, config: config}, ""
}

func mustGetwd() string {
	dir, err := os.Getwd()
	if err != nil {
		return "the working directory"
	}
	return dir
}
