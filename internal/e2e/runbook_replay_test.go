//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
)

// TestRunbookReplayLocally runs the "Try replay locally" section of docs/runbook.md as written: the demo (which
// stays up with -keep) stores five records and sends four to the error table, one of them wrongly; the replay with
// the fixed configuration stores the sixth, a dry run first changes nothing, the stale error entry is cleared, and a
// second replay changes nothing. Every command must exit 0; the states are read from dynalite.
func TestRunbookReplayLocally(t *testing.T) {
	root, err := emulators.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	blocks := runbookBlocks(t, filepath.Join(root, "docs", "runbook.md"), "### Try replay locally")
	if len(blocks) != 3 || len(blocks[0]) != 1 || len(blocks[1]) != 2 || len(blocks[2]) != 2 {
		t.Fatalf("the section has blocks %q; want the demo's command, the replay block (dry run, run) and the clean-up block", blocks)
	}
	if d := blocks[0][0]; !strings.HasPrefix(d, "go run ./examples/local-demo ") || !strings.Contains(d, " -keep") || strings.Contains(d, "-fail-writes") {
		t.Fatalf("the demo's command %q is not `go run ./examples/local-demo -keep ...` without -fail-writes", d)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", t.TempDir()+string(os.PathSeparator), "./examples/local-demo", "./runtime/cmd/redrive", "./runtime/cmd/kdp")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the demo and the commands: %v\n%s", err, out)
	}
	cancel()
	t.Logf("built in %v", time.Since(start).Round(time.Second))
	ctx, cancel = context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	out := &lineBuffer{notify: make(chan struct{}, 1)}
	demo := exec.Command("sh", "-c", "exec "+blocks[0][0])
	demo.Dir, demo.Stdout, demo.Stderr = root, out, out
	demo.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := demo.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- demo.Wait() }()
	defer func() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-exited
		}
	}()
	exports := waitForExports(t, ctx, out, exited)
	env := os.Environ()
	vars := map[string]string{}
	for _, kv := range exports {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
		env = append(env, kv)
	}
	for _, k := range []string{"AWS_ENDPOINT_URL_KINESIS", "AWS_ENDPOINT_URL_DYNAMODB"} {
		if u, err := url.Parse(vars[k]); err != nil || u.Hostname() != "127.0.0.1" {
			t.Fatalf("%s=%q is not on 127.0.0.1", k, vars[k])
		}
	}
	db := emulators.DynamoDBClient(vars["AWS_ENDPOINT_URL_DYNAMODB"])
	sq := sqs.NewFromConfig(emulators.AWSConfig(), func(o *sqs.Options) { o.BaseEndpoint = aws.String(vars["AWS_ENDPOINT_URL_SQS"]) })
	look := func() runbookState { return lookAt(t, ctx, db, sq, vars["QUEUE_URL"]) }
	if s := look(); s != (runbookState{data: 5, errors: 4, fixable: 1}) {
		t.Fatalf("the demo's state %+v: want 5 items, 4 error entries, 1 of them the schema's\n%s", s, out.String())
	}

	after := []runbookState{
		{data: 6, errors: 4, fixable: 1}, // replayed: stored, the stale entry still there
		{data: 6, errors: 3, fixable: 0}, // cleared, and a second replay changed nothing
	}
	for i, block := range blocks[1:] {
		for _, line := range block {
			before := look()
			cmd := exec.CommandContext(ctx, "sh", "-c", line)
			cmd.Dir, cmd.Env = root, env
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s: %v\n%s%s", line, err, stdout.String(), stderr.String())
			}
			if s := look(); strings.Contains(line, "--dry-run") && s != before {
				t.Errorf("%s changed %+v to %+v", line, before, s)
			}
			if strings.Contains(line, "kdp replay") {
				if !strings.Contains(stdout.String(), "left: none") || !strings.Contains(stderr.String(), "shares each shard's 5 reads per second and 2 MiB per second") {
					t.Errorf("%s: the summary does not say left: none, or the start does not warn about sharing the stream:\n%s%s", line, stdout.String(), stderr.String())
				}
				if strings.Contains(line, "--dry-run") && !strings.Contains(stdout.String(), "9 read, would write 6 items, 0 superseded") {
					t.Errorf("%s: the dry run does not say it would write the 6 items:\n%s", line, stdout.String())
				}
			}
			t.Logf("%s\n%s", line, stdout.String())
		}
		if s := look(); s != after[i] {
			t.Errorf("after block %d: %+v, want %+v", i+2, s, after[i])
		}
	}
}
