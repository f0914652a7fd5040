package kinesispipeline

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProcessorDependenciesAreImportedByTheConstruct keeps a consumer's go.sum complete: after `go mod tidy` in a
// CDK app that imports this package, building the default processor by import path must need no module the
// construct's own import graph lacks (otherwise synth fails with "missing go.sum entry").
func TestProcessorDependenciesAreImportedByTheConstruct(t *testing.T) {
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
	for pkg := range list(DefaultProcessorPackage) {
		if pkg != DefaultProcessorPackage && !construct[pkg] {
			t.Errorf("the processor imports %s, which the construct's import graph lacks", pkg)
		}
	}
}
