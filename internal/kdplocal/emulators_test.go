package kdplocal

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestPinnedEmulatorVersions: the versions kdp local installs are the ones package-lock.json pins for this module's
// own tests.
func TestPinnedEmulatorVersions(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(raw, &lock); err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]string{"dynalite": dynaliteVersion, "kinesalite": kinesaliteVersion} {
		want := lock.Packages["node_modules/"+name].Version
		if want == "" || got != want {
			t.Errorf("%s: kdp local installs %q, package-lock.json pins %q", name, got, want)
		}
	}
}

// fakeTools writes executables named tools into a new directory and returns it. A fake npm appends its arguments to
// the file args in that directory, then (unless npmFails) creates the emulators' bin links under --prefix.
func fakeTools(t *testing.T, npmFails bool, tools ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, tool := range tools {
		script := "#!/bin/sh\nexit 0\n"
		if tool == "npm" {
			script = `#!/bin/sh
PATH=/usr/bin:/bin
printf '%s\n' "$*" >> "` + filepath.Join(dir, "args") + `"
`
			if npmFails {
				script += "echo 'npm ERR! network' >&2\nexit 1\n"
			} else {
				script += `prefix=""
while [ $# -gt 0 ]; do [ "$1" = --prefix ] && prefix="$2"; shift; done
mkdir -p "$prefix/node_modules/.bin" && touch "$prefix/node_modules/.bin/dynalite" "$prefix/node_modules/.bin/kinesalite"
`
			}
		}
		if err := os.WriteFile(filepath.Join(dir, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// withEmulators returns a new directory whose node_modules holds both emulators' bin entries.
func withEmulators(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "node_modules", ".bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"dynalite", "kinesalite"} {
		if err := os.WriteFile(filepath.Join(bin, name), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestFindOrInstallEmulators: installed emulators are used where found; otherwise the pinned versions are installed
// into the cache folder with npm (once), and a missing node or npm, or a failing npm, is a one-line error.
func TestFindOrInstallEmulators(t *testing.T) {
	installed := withEmulators(t)
	tests := []struct {
		name       string
		candidates []string
		cached     bool // the cache folder already holds the emulators
		install    bool
		tools      []string
		npmFails   bool
		wantDir    string // "cache" for the cache folder
		wantNpm    bool
		wantErr    string
		wantUsage  bool
	}{
		{name: "found in a candidate", candidates: []string{t.TempDir(), installed}, install: true, tools: []string{"node", "npm"}, wantDir: installed},
		{name: "found in the cache", candidates: []string{t.TempDir()}, cached: true, install: true, tools: []string{"node", "npm"}, wantDir: "cache"},
		{name: "installed on first use", candidates: []string{t.TempDir()}, install: true, tools: []string{"node", "npm"}, wantDir: "cache", wantNpm: true},
		{name: "no npm", candidates: []string{t.TempDir()}, install: true, tools: []string{"node"}, wantErr: "npm is not installed (no `npm` on PATH)", wantUsage: true},
		{name: "no node", candidates: []string{t.TempDir()}, install: true, tools: []string{"npm"}, wantErr: "Node.js is not installed (no `node` on PATH)", wantUsage: true},
		{name: "npm fails", candidates: []string{t.TempDir()}, install: true, tools: []string{"node", "npm"}, npmFails: true, wantNpm: true, wantErr: "install the emulators: npm install"},
		{name: "explicit directory without them", candidates: []string{t.TempDir()}, tools: []string{"node", "npm"}, wantErr: "dynalite and kinesalite are not installed in", wantUsage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tools := fakeTools(t, tt.npmFails, tt.tools...)
			t.Setenv("PATH", tools)
			cache := filepath.Join(t.TempDir(), "cache", "kinesis-dynamo-pipeline", "emulators")
			if tt.cached {
				cache = withEmulators(t)
			}
			cacheArg := cache
			if !tt.install {
				cacheArg = ""
			}
			var log bytes.Buffer
			dir, err := findOrInstallEmulators(context.Background(), tt.candidates, cacheArg, tt.install, &log)
			args, _ := os.ReadFile(filepath.Join(tools, "args"))
			if tt.wantNpm {
				want := "install --no-audit --no-fund --prefix " + cache + " dynalite@4.0.0 kinesalite@3.3.3\n"
				if string(args) != want {
					t.Errorf("npm ran with %q, want %q", args, want)
				}
				if !strings.Contains(log.String(), "installing the emulators into "+cache) {
					t.Errorf("log does not say what it installs: %q", log.String())
				}
			} else if len(args) != 0 {
				t.Errorf("npm ran: %q", args)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %v, want one line with %q", err, tt.wantErr)
				}
				var ue *usageError
				if got := reflect.TypeOf(err) == reflect.TypeOf(ue); got != tt.wantUsage {
					t.Errorf("usage error %v, want %v", got, tt.wantUsage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tt.wantDir
			if want == "cache" {
				want = cache
			}
			if dir != want {
				t.Errorf("emulators in %s, want %s", dir, want)
			}
		})
	}
}
