package emulators

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fatalTB records the message of a Fatal call and stops the calling goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper()        {}
func (f *fatalTB) Cleanup(func()) {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func runFatal(t *testing.T, fn func(tb testing.TB)) string {
	t.Helper()
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f.msg
}

func TestMissingToolsFailWithTheFix(t *testing.T) {
	tests := []struct {
		name      string
		installed bool // whether node_modules/.bin holds the emulator
		start     func(tb testing.TB) string
		want      []string
	}{
		{"dynalite not installed", false, Dynalite, []string{"dynalite is not installed", "npm ci"}},
		{"kinesalite not installed", false, Kinesalite, []string{"kinesalite is not installed", "npm ci"}},
		{"node missing", true, Dynalite, []string{"node is not on PATH", "install Node.js", "npm ci"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module example.com/x\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if tt.installed {
				bin := filepath.Join(root, "node_modules", ".bin")
				if err := os.MkdirAll(bin, 0o755); err != nil {
					t.Fatal(err)
				}
				for _, name := range []string{"dynalite", "kinesalite"} {
					if err := os.WriteFile(filepath.Join(bin, name), nil, 0o755); err != nil {
						t.Fatal(err)
					}
				}
			}
			sub := filepath.Join(root, "some", "pkg")
			if err := os.MkdirAll(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Chdir(sub)
			t.Setenv("PATH", t.TempDir())
			t.Setenv(EnvDynamoDBEndpoint, "")
			t.Setenv(EnvKinesisEndpoint, "")
			msg := runFatal(t, func(tb testing.TB) { tt.start(tb) })
			for _, w := range append(tt.want, root) {
				if !strings.Contains(msg, w) {
					t.Errorf("fatal message %q does not mention %q", msg, w)
				}
			}
		})
	}
}

func TestEndpointOverride(t *testing.T) {
	t.Setenv(EnvDynamoDBEndpoint, "http://127.0.0.1:1")
	t.Setenv(EnvKinesisEndpoint, "http://127.0.0.1:2")
	if got := Dynalite(t); got != "http://127.0.0.1:1" {
		t.Errorf("Dynalite = %s", got)
	}
	if got := Kinesalite(t); got != "http://127.0.0.1:2" {
		t.Errorf("Kinesalite = %s", got)
	}
}

func TestUniqueName(t *testing.T) {
	tests := []struct {
		give       string
		wantPrefix string
	}{
		{"TestWrite/sub test", "TestWrite-sub-test-"},
		{strings.Repeat("x", 300), strings.Repeat("x", 90) + "-"},
	}
	for _, tt := range tests {
		a, b := UniqueName(tt.give), UniqueName(tt.give)
		if a == b {
			t.Errorf("UniqueName(%q) returned %s twice", tt.give, a)
		}
		if !strings.HasPrefix(a, tt.wantPrefix) || len(a) > 128 {
			t.Errorf("UniqueName(%q) = %s, want prefix %s and at most 128 characters", tt.give, a, tt.wantPrefix)
		}
	}
}
