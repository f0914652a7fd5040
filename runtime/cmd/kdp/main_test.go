package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive/cli"
)

// TestRun: the subcommands dispatch to their implementations; bad usage exits 2.
func TestRun(t *testing.T) {
	// The oracle for kdp redrive is the redrive command itself, run with the same arguments.
	var redriveOut, redriveErr bytes.Buffer
	redriveCode := cli.Main(context.Background(), []string{"nosuchmode"}, &redriveOut, &redriveErr)
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{name: "no command", args: nil, wantCode: 2, wantStderr: "usage:"},
		{name: "unknown command", args: []string{"deploy"}, wantCode: 2, wantStderr: `unknown command "deploy"`},
		{name: "redrive delegates", args: []string{"redrive", "nosuchmode"}, wantCode: redriveCode, wantStderr: redriveErr.String()},
		{name: "replay needs a window", args: []string{"replay", "--stream", "arn:aws:kinesis:eu-west-1:123456789012:stream/s", "--table", "T"}, wantCode: 2, wantStderr: "kdp replay: --since is required"},
		{name: "local needs a stack", args: []string{"local"}, wantCode: 2, wantStderr: "--stack is required"},
		{name: "local, no assembly", args: []string{"local", "--cdk-out", t.TempDir(), "--stack", "S"}, wantCode: 2, wantStderr: "is not a cloud assembly"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.wantStderr)
			}
		})
	}
	if redriveCode != cli.ExitUsage {
		t.Errorf("redrive with an unknown mode: exit %d, want %d", redriveCode, cli.ExitUsage)
	}
}
