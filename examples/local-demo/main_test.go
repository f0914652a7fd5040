//go:build integration

package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/localrun"
)

func TestDemo(t *testing.T) {
	prebuild(t)
	tests := []struct {
		name string
		rie  bool
	}{
		{"in process", false},
		{"bootstrap under aws-lambda-rie", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var out bytes.Buffer
			if err := run(ctx, &out, options{rie: tt.rie}); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			got := out.String()
			for _, want := range []*regexp.Regexp{
				regexp.MustCompile(`local-pipeline-data: 6 items`),
				regexp.MustCompile(`2024-09-13T23:06:55\.934081Z +81 +C`), // the README's sample record
				regexp.MustCompile(`local-pipeline-errors: 3 items`),
				regexp.MustCompile(`broken-2 +payload is not valid JSON.* +not json at all`),
				regexp.MustCompile(`9 records acknowledged, 0 given up`),
				regexp.MustCompile(`Stopping the emulators`),
			} {
				if !want.MatchString(got) {
					t.Errorf("output lacks %s:\n%s", want, got)
				}
			}
			if strings.Contains(got, "0.0.0.0") {
				t.Errorf("something listens beyond 127.0.0.1:\n%s", got)
			}
		})
	}
}

// prebuild builds bootstrap and aws-lambda-rie the way the demo does, so the demo's own builds (inside the timed
// runs) find the build cache warm: a cold build of both takes minutes on a busy machine and is not what the time
// limit of a run is about. The builds get their own limit.
func prebuild(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	root, err := emulators.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	start := time.Now()
	if _, err := localrun.BuildBootstrap(ctx, root, "./runtime/cmd/processor", dir); err != nil {
		t.Fatal(err)
	}
	if _, err := localrun.BuildRIE(ctx, dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("built bootstrap and aws-lambda-rie in %v", time.Since(start).Round(time.Second))
}
