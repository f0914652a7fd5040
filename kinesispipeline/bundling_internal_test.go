package kinesispipeline

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
)

// These tests drive the bundler directly, without jsii, for the failures a user can cause.

func TestBundlerErrors(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("these tests need the go command: %v", err)
	}
	tests := []struct {
		name  string
		files map[string]string
		pkg   string
		want  []string
	}{
		{
			name:  "compile error shows the compiler output",
			files: map[string]string{"go.mod": "module example.com/app\n\ngo 1.26\n", "cmd/p/main.go": "package main\n\nfunc main() { undefinedCall() }\n"},
			pkg:   "example.com/app/cmd/p",
			want:  []string{"go build example.com/app/cmd/p", "GOARCH=arm64", "undefined: undefinedCall"},
		},
		{
			name: "vendored module without the processor",
			files: map[string]string{
				"go.mod":             "module example.com/app\n\ngo 1.26\n",
				"vendor/modules.txt": "# nothing\n",
				"cmd/unused/main.go": "package main\n\nfunc main() {}\n",
			},
			pkg:  DefaultProcessorPackage,
			want: []string{"vendors its dependencies", "remove vendor/"},
		},
		{
			name:  "outside any module",
			files: map[string]string{"README": "not a module\n"},
			pkg:   DefaultProcessorPackage,
			want:  []string{"is not inside a Go module"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := testutil.WriteModule(t, tt.files)
			t.Setenv("GOWORK", "off")
			t.Setenv("GOFLAGS", "-mod=mod")
			b := &goBundler{pkg: tt.pkg, dir: dir, goarch: "arm64", tags: "lambda.norpc", config: []byte("{}\n")}
			err := b.bundle(t.TempDir())
			if err == nil {
				t.Fatal("want an error, got none")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error must contain %q, got:\n%v", want, err)
				}
			}
		})
	}
}

func TestBundlerEnvironmentIsPinned(t *testing.T) {
	t.Setenv("GOFLAGS", "-mod=vendor")
	t.Setenv("GOARCH", "386")
	b := &goBundler{goarch: "arm64"}
	env := map[string]string{}
	for _, kv := range b.env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v // later entries win, as in exec.Cmd
	}
	for k, want := range map[string]string{"GOOS": "linux", "GOARCH": "arm64", "CGO_ENABLED": "0", "GOFLAGS": "", "GOARM64": "v8.0", "GOAMD64": "v1"} {
		if env[k] != want {
			t.Errorf("%s=%q, want %q", k, env[k], want)
		}
	}
}

// TestBundlerBuildsOwnEntryInVendoredModule: a user's own entry is part of their module, so vendoring does not stop
// it from building (only the default processor, which lives in this module, cannot be vendored).
func TestBundlerBuildsOwnEntryInVendoredModule(t *testing.T) {
	dir := testutil.WriteModule(t, map[string]string{
		"go.mod":             "module example.com/app\n\ngo 1.26\n",
		"vendor/modules.txt": "",
		"cmd/p/main.go":      "package main\n\nfunc main() {}\n",
	})
	t.Setenv("GOWORK", "off")
	out := t.TempDir()
	b := &goBundler{prop: "ProcessorEntry", pkg: "example.com/app/cmd/p", dir: dir, goarch: "arm64", tags: "lambda.norpc", config: []byte("{}\n")}
	if err := b.bundle(out); err != nil {
		t.Fatalf("a vendored module's own entry must build: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "bootstrap")); err != nil {
		t.Fatal(err)
	}
}
