package kinesispipeline

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCommandDependenciesAreImportedByTheConstruct keeps a consumer's go.sum complete: after `go mod tidy` in a CDK
// app that imports this package, building the default processor by import path (the bundler does) and running the
// redrive command by import path without a version (the stack outputs do, under a replace directive or before the
// module is published) must need no module the construct's own import graph lacks, or they fail with "missing
// go.sum entry".
func TestCommandDependenciesAreImportedByTheConstruct(t *testing.T) {
	list := func(pkg string) map[string]bool {
		t.Helper()
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		set := map[string]bool{}
		for _, p := range strings.Fields(string(out)) {
			set[p] = true
		}
		return set
	}
	construct := list(".")
	for _, command := range []string{DefaultProcessorPackage, "github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/cmd/redrive", SelfTestPackage} {
		for pkg := range list(command) {
			if pkg != command && !construct[pkg] {
				t.Errorf("%s imports %s, which the construct's import graph lacks", command, pkg)
			}
		}
	}
}
