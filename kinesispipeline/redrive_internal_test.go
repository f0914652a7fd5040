package kinesispipeline

import (
	"runtime/debug"
	"testing"
)

// TestRedriveCommandVersion: the output command names a version only when a module proxy serves it; under a replace
// directive (go.mod then requires the zero pseudo-version), in a development build or without build information, it
// runs the package by import path in the app's module.
func TestRedriveCommandVersion(t *testing.T) {
	const pkg = "go run github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/cmd/redrive"
	dep := func(version string, replace *debug.Module) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Path: "example.com/app", Version: "(devel)"},
			Deps: []*debug.Module{{Path: "github.com/aws/jsii-runtime-go", Version: "v1.142.0"}, {Path: modulePath, Version: version, Replace: replace}}}
	}
	tests := []struct {
		name string
		give *debug.BuildInfo
		want string
	}{
		{"release", dep("v1.2.3", nil), pkg + "@v1.2.3"},
		{"pseudo-version of a commit", dep("v0.0.0-20261204123324-0d22d00e287c", nil), pkg + "@v0.0.0-20261204123324-0d22d00e287c"},
		{"replace by a directory", dep("v0.0.0-00010101000000-000000000000", &debug.Module{Path: "../kdp"}), pkg},
		{"replace of a release by a directory", dep("v1.2.3", &debug.Module{Path: "/src/kdp"}), pkg},
		{"replace by a fork", dep("v1.2.3", &debug.Module{Path: "example.com/fork", Version: "v1.2.4"}), pkg},
		{"zero pseudo-version without replace", dep("v0.0.0-00010101000000-000000000000", nil), pkg},
		{"zero pseudo-version of a major version", dep("v2.0.0-00010101000000-000000000000", nil), pkg},
		{"development build", dep("(devel)", nil), pkg},
		{"empty version", dep("", nil), pkg},
		{"this module is the main module", &debug.BuildInfo{Main: debug.Module{Path: modulePath, Version: "(devel)"}}, pkg},
		{"no build information", nil, pkg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redriveCommand(tt.give); got != tt.want {
				t.Errorf("redriveCommand = %q, want %q", got, tt.want)
			}
		})
	}
}
