package kinesispipeline_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
)

func TestProcessorEntryErrors(t *testing.T) {
	mod := testutil.WriteModule(t, map[string]string{
		"go.mod":         "module example.com/entry\n\ngo 1.26\n",
		"lib/lib.go":     "package lib\n\nfunc F() {}\n",
		"broken/main.go": "package main\n\nfunc main() { notDefined() }\n",
	})
	tests := []struct {
		name   string
		entry  string
		bundle bool
		want   []string
	}{
		{"missing directory", "./no-such-processor", false, []string{`ProcessorEntry: "./no-such-processor" does not exist`}},
		{"unknown import path", "example.com/nowhere/processor", false, []string{`ProcessorEntry: "example.com/nowhere/processor"`}},
		{"not a main package", filepath.Join(mod, "lib"), false, []string{"ProcessorEntry:", "is package lib, not a main package"}},
		{"does not compile", filepath.Join(mod, "broken"), true, []string{
			`[Entry/Pipeline/Function] kinesispipeline: bundling ProcessorEntry "example.com/entry/broken" failed`, "undefined: notDefined"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := testutil.NewApp()
			if tt.bundle {
				app, _ = testutil.BundlingApp(t)
			}
			stack := awscdk.NewStack(app, jsii.String("Entry"), nil)
			msg := testutil.PanicMessage(t, func() {
				kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
					ProcessorEntry: jsii.String(tt.entry),
				})
				app.Synth(nil) // a failed build is a validation error: synth fails
			})
			for _, want := range tt.want {
				if n := strings.Count(msg, want); n != 1 {
					t.Errorf("panic message must contain %q once, found %d times in:\n%s", want, n, msg)
				}
			}
		})
	}
}

// TestProcessorEntryByImportPath names the default processor by import path: it resolves from the working
// directory's module, like a user's own package would.
func TestProcessorEntryByImportPath(t *testing.T) {
	stack := testutil.NewStack()
	testutil.Must(t, func() {
		kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
			ProcessorEntry: jsii.String(kinesispipeline.DefaultProcessorPackage),
		})
	})
	testutil.OneResource(t, testutil.Template(t, stack), typeFunction)
}
