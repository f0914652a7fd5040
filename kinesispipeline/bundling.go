package kinesispipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3assets"
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
	pkg    string // import path of the main package to build
	dir    string // directory to build in: inside the module that resolves pkg
	goarch string // "arm64" or "amd64"
	tags   string // build tags, comma-separated
	config []byte // content of processor.ConfigFileName
}

var _ awscdk.ILocalBundling = (*goBundler)(nil)

// TryBundle builds the processor into outputDir. It never returns false: falling back to Docker would fail on
// machines without it with a message about the Docker daemon, hiding the real problem. Failures panic instead.
func (b *goBundler) TryBundle(outputDir *string, _ *awscdk.BundlingOptions) *bool {
	if err := b.bundle(*outputDir); err != nil {
		what := "the processor"
		if b.prop != "" {
			what = fmt.Sprintf("%s %q", b.prop, b.pkg)
		}
		panic(fmt.Sprintf("kinesispipeline: bundling %s failed: %v", what, err))
	}
	return jsii.Bool(true)
}

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
	cmd := exec.Command(goBin, "build", "-trimpath", "-buildvcs=false", "-tags", b.tags,
		"-ldflags", "-s -w", "-o", filepath.Join(outputDir, "bootstrap"), b.pkg)
	cmd.Dir = b.dir
	cmd.Env = b.env()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s (GOOS=linux GOARCH=%s, in %s): %w\n%s", b.pkg, b.goarch, b.dir, err,
			strings.TrimSpace(out.String()))
	}
	if err := os.WriteFile(filepath.Join(outputDir, processor.ConfigFileName), b.config, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", processor.ConfigFileName, err)
	}
	return nil
}

// env pins everything that changes the binary, so the same source gives the same bytes (and asset hash).
func (b *goBundler) env() []string {
	return append(os.Environ(), "GOOS=linux", "GOARCH="+b.goarch, "CGO_ENABLED=0", "GOAMD64=v1", "GOARM64=v8.0",
		"GOFLAGS=")
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
	return awslambda.Code_FromAsset(jsii.String(b.dir), &awss3assets.AssetOptions{
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
}

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
