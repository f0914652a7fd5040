package kdplocal

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The emulator versions kdp local installs on first use: the ones this module's package-lock.json pins (a test keeps
// them equal).
const (
	dynaliteVersion   = "4.0.0"
	kinesaliteVersion = "3.3.3"
)

// emulatorCacheSubdir is where, under the user's cache folder, kdp local installs the emulators.
const emulatorCacheSubdir = "kinesis-dynamo-pipeline/emulators"

// hasEmulators reports whether dir's node_modules holds both emulators.
func hasEmulators(dir string) bool {
	for _, name := range []string{"dynalite", "kinesalite"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", ".bin", name)); err != nil {
			return false
		}
	}
	return true
}

// npmInstallArgs are the arguments of the npm command that installs the pinned emulators into dir.
func npmInstallArgs(dir string) []string {
	return []string{"install", "--no-audit", "--no-fund", "--prefix", dir,
		"dynalite@" + dynaliteVersion, "kinesalite@" + kinesaliteVersion}
}

// findOrInstallEmulators returns the first of candidates, then cacheDir, whose node_modules holds both emulators.
// When none does and install is set, it installs the pinned versions into cacheDir with npm, saying so on log.
// Node.js and npm come from PATH; a missing one is a one-line error.
func findOrInstallEmulators(ctx context.Context, candidates []string, cacheDir string, install bool, log io.Writer) (string, error) {
	looked := append([]string{}, candidates...)
	if cacheDir != "" {
		looked = append(looked, cacheDir)
	}
	for _, dir := range looked {
		if hasEmulators(dir) {
			return dir, nil
		}
	}
	if !install || cacheDir == "" {
		return "", &usageError{fmt.Sprintf("dynalite and kinesalite are not installed in %s: run `npm install --no-save dynalite@%s kinesalite@%s` there (needs Node.js 20+)",
			strings.Join(looked, " or "), dynaliteVersion, kinesaliteVersion)}
	}
	if _, err := exec.LookPath("node"); err != nil {
		return "", &usageError{"Node.js is not installed (no `node` on PATH): kdp local runs the dynalite and kinesalite emulators on Node.js 20 or later; install it, then run again"}
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", &usageError{"npm is not installed (no `npm` on PATH): kdp local installs the dynalite and kinesalite emulators with it; install npm (it comes with Node.js), then run again"}
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("install the emulators: %w", err)
	}
	args := npmInstallArgs(cacheDir)
	fmt.Fprintf(log, "kdp local: first use: installing the emulators into %s: npm %s\n", cacheDir, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, npm, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("install the emulators: npm %s: %w", strings.Join(args, " "), err)
	}
	if !hasEmulators(cacheDir) {
		return "", fmt.Errorf("install the emulators: npm succeeded but %s has no node_modules/.bin/dynalite and kinesalite", cacheDir)
	}
	return cacheDir, nil
}
