package testutil

import (
	"debug/elf"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
)

// BundlingApp returns an app that bundles for real into a temporary output directory, and that directory. It has
// the feature flags FeatureFlagsEnv chooses.
func BundlingApp(t testing.TB) (awscdk.App, string) {
	t.Helper()
	out := t.TempDir()
	ctx := AppContext(nil)
	return awscdk.NewApp(&awscdk.AppProps{Outdir: &out, Context: &ctx}), out
}

// FunctionAssets reads stack's synthesized template from outdir and returns, for each Lambda function, its asset
// directory (where the bundled code was staged) by logical ID. Call it after app.Synth.
func FunctionAssets(t testing.TB, outdir, stack string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(outdir, stack+".template.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tmpl map[string]interface{}
	if err := json.Unmarshal(raw, &tmpl); err != nil {
		t.Fatal(err)
	}
	assets := map[string]string{}
	for id, fn := range Resources(tmpl, "AWS::Lambda::Function") {
		key, _ := Get(fn, "Properties", "Code", "S3Key").(string)
		assets[id] = filepath.Join(outdir, "asset."+strings.TrimSuffix(key, ".zip"))
	}
	return assets
}

// AssetOf returns the asset directory of the one function whose logical ID starts with prefix.
func AssetOf(t testing.TB, assets map[string]string, prefix string) string {
	t.Helper()
	var found []string
	for id, dir := range assets {
		if strings.HasPrefix(id, prefix) {
			found = append(found, dir)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one function with logical ID prefix %s, found %d in %v", prefix, len(found), assets)
	}
	return found[0]
}

// CheckBootstrap asserts that dir holds an executable, statically linked Linux ELF named bootstrap for machine, and
// returns its bytes.
func CheckBootstrap(t testing.TB, dir string, machine elf.Machine) []byte {
	t.Helper()
	path := filepath.Join(dir, "bootstrap")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatalf("asset has no bootstrap: %v", err)
	}
	if info.Mode()&0o111 == 0 {
		t.Errorf("bootstrap is not executable: %v", info.Mode())
	}
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("bootstrap is not an ELF file: %v", err)
	}
	defer f.Close()
	if f.Machine != machine {
		t.Errorf("bootstrap machine: got %v, want %v", f.Machine, machine)
	}
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		t.Errorf("bootstrap OS ABI: %v", f.OSABI)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
			t.Errorf("bootstrap is dynamically linked (program header %v); want a static binary", prog.Type)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// WriteModule writes files (slash-separated paths relative to a new temporary directory) and returns the directory.
// Include a go.mod to make it a module.
func WriteModule(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	WriteTree(t, dir, files)
	return dir
}

// WriteTree writes files (slash-separated paths relative to dir) into dir, creating directories as needed.
func WriteTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
