package kinesispipeline

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// TestBundlerWorkspace: a module the build uses through an absolute directory replacement goes into a workspace
// (its path would otherwise be written into the binary); nothing else does.
func TestBundlerWorkspace(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("this test needs the go command: %v", err)
	}
	lib := testutil.WriteModule(t, map[string]string{
		"go.mod":     "module example.com/lib\n\ngo 1.26.0\n",
		"lib/lib.go": "package lib\n\nfunc F() {}\n",
	})
	appMod := func(goLine, extra, replace string) string {
		return "module example.com/app\n\ngo " + goLine + "\n" + extra + "\nrequire example.com/lib v0.0.0\n\nreplace example.com/lib => " + replace + "\n"
	}
	const usesLib = "package main\n\nimport \"example.com/lib/lib\"\n\nfunc main() { lib.F() }\n"
	tests := []struct {
		name   string
		files  map[string]string
		gowork func(app string) string // GOWORK for the build; "" means off
		want   func(app string) string // the go.work written, "" for none
	}{
		{
			name:  "absolute replacement in use",
			files: map[string]string{"go.mod": appMod("1.26.0", "", lib), "cmd/p/main.go": usesLib},
			want: func(app string) string {
				return "go 1.26.0\nuse " + strconv.Quote(app) + "\nuse " + strconv.Quote(lib) + "\n"
			},
		},
		{
			name:  "the root's go and toolchain lines",
			files: map[string]string{"go.mod": appMod("1.26.0", "\ntoolchain go1.26.1\n", lib), "cmd/p/main.go": usesLib},
			want: func(app string) string {
				return "go 1.26.0\ntoolchain go1.26.1\nuse " + strconv.Quote(app) + "\nuse " + strconv.Quote(lib) + "\n"
			},
		},
		{
			name:  "absolute replacement not used by the package",
			files: map[string]string{"go.mod": appMod("1.26.0", "", lib), "cmd/p/main.go": "package main\n\nfunc main() {}\n"},
		},
		{
			name:  "relative replacement",
			files: map[string]string{"go.mod": appMod("1.26.0", "", "./lib"), "lib/go.mod": "module example.com/lib\n\ngo 1.26.0\n", "lib/lib/lib.go": "package lib\n\nfunc F() {}\n", "cmd/p/main.go": usesLib},
		},
		{
			name:  "vendored module",
			files: map[string]string{"go.mod": appMod("1.26.0", "", lib), "cmd/p/main.go": usesLib, "vendor/modules.txt": ""},
		},
		{
			name:  "a workspace of the user's",
			files: map[string]string{"go.mod": appMod("1.26.0", "", lib), "cmd/p/main.go": usesLib},
			gowork: func(app string) string {
				path := filepath.Join(t.TempDir(), "go.work")
				if err := os.WriteFile(path, []byte("go 1.26.0\n\nuse "+strconv.Quote(app)+"\nuse "+strconv.Quote(lib)+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return path
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := testutil.WriteModule(t, tt.files)
			gowork := "off"
			if tt.gowork != nil {
				gowork = tt.gowork(app)
			}
			t.Setenv("GOWORK", gowork)
			b := &goBundler{pkg: "example.com/app/cmd/p", dir: app, goarch: "arm64", tags: "lambda.norpc"}
			got, err := b.workspace(goBin, app, b.env())
			if err != nil {
				t.Fatal(err)
			}
			want := ""
			if tt.want != nil {
				want = tt.want(app)
			}
			if got == "" || want == "" {
				if got != want {
					t.Fatalf("workspace %q, want %q", got, want)
				}
				return
			}
			defer os.RemoveAll(filepath.Dir(got))
			raw, err := os.ReadFile(got)
			if err != nil {
				t.Fatal(err)
			}
			if string(raw) != want {
				t.Errorf("go.work:\n%s\nwant:\n%s", raw, want)
			}
		})
	}
}

// TestBundlerIgnoresReplacementLocation builds one app from two locations, each replacing its dependency by the
// absolute path of its own copy: the binaries are identical and name neither path.
func TestBundlerIgnoresReplacementLocation(t *testing.T) {
	t.Setenv("GOWORK", "off")
	var binaries [][]byte
	for _, depth := range []string{"a", filepath.Join("b", "much", "deeper")} {
		base := filepath.Join(t.TempDir(), depth)
		lib := filepath.Join(base, "lib")
		app := filepath.Join(base, "app")
		for dir, files := range map[string]map[string]string{
			lib: {"go.mod": "module example.com/lib\n\ngo 1.26.0\n", "lib/lib.go": "package lib\n\nfunc F() string { return \"lib\" }\n"},
			app: {
				"go.mod":        "module example.com/app\n\ngo 1.26.0\n\nrequire example.com/lib v0.0.0\n\nreplace example.com/lib => " + lib + "\n",
				"cmd/p/main.go": "package main\n\nimport \"example.com/lib/lib\"\n\nfunc main() { println(lib.F()) }\n",
			},
		} {
			testutil.WriteTree(t, dir, files)
		}
		out := t.TempDir()
		b := &goBundler{prop: "ProcessorEntry", pkg: "example.com/app/cmd/p", dir: app, goarch: "arm64", tags: "lambda.norpc", config: []byte("{}\n")}
		if err := b.bundle(out); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(out, "bootstrap"))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(base)) {
			t.Errorf("bootstrap built in %s contains that path", base)
		}
		binaries = append(binaries, raw)
	}
	if !bytes.Equal(binaries[0], binaries[1]) {
		t.Error("the same code replaced from two locations gave different binaries")
	}
}
