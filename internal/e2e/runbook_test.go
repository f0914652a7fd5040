//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// The names and the reason the runbook's local section uses.
const (
	runbookTable       = "local-pipeline-data"
	runbookErrorTable  = "local-pipeline-errors"
	runbookFixedReason = "does not match the schema"
)

// TestRunbookLocally runs the "Try it locally" section of docs/runbook.md as written: the first shell block starts
// the demo (which stays up with -keep), the others are run one line at a time by sh, in the environment the demo's
// export lines give. It checks what each block must achieve, that dry runs change nothing, that every command exits
// 0, and that stopping the demo with SIGTERM leaves no process behind.
func TestRunbookLocally(t *testing.T) {
	root, err := emulators.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	blocks := runbookBlocks(t, filepath.Join(root, "docs", "runbook.md"), "## Try it locally")
	if len(blocks) != 4 || len(blocks[0]) != 1 {
		t.Fatalf("the local section has blocks %q; want the demo's command, then the dlq, errors and verify blocks", blocks)
	}
	if d := blocks[0][0]; !strings.HasPrefix(d, "go run ./examples/local-demo ") || !strings.Contains(d, " -keep") || !strings.Contains(d, " -fail-writes") {
		t.Fatalf("the demo's command %q is not `go run ./examples/local-demo -keep -fail-writes ...`", d)
	}
	prebuildRunbook(t, root)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The demo runs in its own process group, as a terminal's foreground job does; SIGTERM goes to the group.
	out := &lineBuffer{notify: make(chan struct{}, 1)}
	demo := exec.Command("sh", "-c", "exec "+blocks[0][0])
	demo.Dir, demo.Stdout, demo.Stderr = root, out, out
	demo.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := demo.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- demo.Wait() }()
	stopped := false
	defer func() {
		if !stopped { // the test failed early: leave nothing running
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-exited
		}
	}()

	exports := waitForExports(t, ctx, out, exited)
	t.Logf("demo up in %v", time.Since(start).Round(time.Millisecond))
	env := os.Environ()
	vars := map[string]string{}
	for _, kv := range exports {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
		env = append(env, kv)
	}
	for _, k := range []string{"AWS_ENDPOINT_URL_KINESIS", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS", "QUEUE_URL"} {
		u, err := url.Parse(vars[k])
		if err != nil || u.Hostname() != "127.0.0.1" {
			t.Fatalf("%s=%q is not on 127.0.0.1", k, vars[k])
		}
	}
	if ref, err := redrive.ParseStreamARN(vars["STREAM_ARN"]); err != nil || ref.Name != "local-pipeline" {
		t.Fatalf("STREAM_ARN=%q is not the demo stream's ARN: %v", vars["STREAM_ARN"], err)
	}
	if !strings.Contains(out.String(), "9 given up (on-failure destination: 2 messages)") {
		t.Fatalf("the demo did not give the batches up:\n%s", out.String())
	}
	db := emulators.DynamoDBClient(vars["AWS_ENDPOINT_URL_DYNAMODB"])
	sq := sqs.NewFromConfig(emulators.AWSConfig(), func(o *sqs.Options) { o.BaseEndpoint = aws.String(vars["AWS_ENDPOINT_URL_SQS"]) })
	look := func() runbookState { return lookAt(t, ctx, db, sq, vars["QUEUE_URL"]) }

	checks := []struct {
		name string
		want func(s runbookState) bool
	}{
		{"dlq", func(s runbookState) bool { return s.data == 5 && s.errors == 4 && s.messages == 0 && s.fixable == 1 }},
		{"errors", func(s runbookState) bool { return s.data == 6 && s.errors == 3 && s.messages == 0 && s.fixable == 0 }},
		{"verify", func(s runbookState) bool { return s.data == 6 && s.errors == 3 && s.messages == 0 && s.fixable == 0 }},
	}
	if s := look(); s != (runbookState{messages: 2}) {
		t.Fatalf("before the redrive: %+v, want 2 messages and empty tables", s)
	}
	cmdStart := time.Now()
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
			after := look()
			if strings.Contains(line, "--dry-run") && after != before {
				t.Errorf("%s changed %+v to %+v", line, before, after)
			}
			if checks[i].name == "verify" && !strings.Contains(stdout.String(), "sources: 0: none") {
				t.Errorf("%s still finds sources:\n%s", line, stdout.String())
			}
			t.Logf("%s\n%s", line, stdout.String())
		}
		if s := look(); !checks[i].want(s) {
			t.Errorf("after the %s block: %+v", checks[i].name, s)
		}
	}
	t.Logf("runbook commands took %v", time.Since(cmdStart).Round(time.Millisecond))

	// Ctrl-C in the demo's terminal: everything it started must stop.
	stopped = true
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited: // after the last writer of its output (the demo itself) is gone
		var ee *exec.ExitError
		if err != nil && !(errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGTERM) {
			t.Errorf("demo: %v", err)
		}
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
		t.Fatalf("the demo did not stop within 30 s of SIGTERM:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "Stopping the emulators.") {
		t.Errorf("the demo did not stop cleanly:\n%s", out.String())
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(-pgid, 0) == nil {
		if time.Now().After(deadline) {
			ps, _ := exec.Command("ps", "-o", "pid,args", "-g", strconv.Itoa(pgid)).CombinedOutput()
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			t.Fatalf("processes left in the demo's group after it exited:\n%s", ps)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, k := range []string{"AWS_ENDPOINT_URL_KINESIS", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS"} {
		u, _ := url.Parse(vars[k])
		if c, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
			c.Close()
			t.Errorf("%s (%s) still accepts connections after the demo stopped", k, u.Host)
		}
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// prebuildRunbook builds what the runbook's commands `go run` (the demo and the redrive command), so that their runs
// inside the timed part of the test find the build cache warm: a cold build on a busy machine takes minutes and is
// not what the time limit is about. The build gets its own, generous limit.
func prebuildRunbook(t *testing.T, root string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", t.TempDir()+string(os.PathSeparator), "./examples/local-demo", "./runtime/cmd/redrive")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the demo and the redrive command: %v\n%s", err, out)
	}
	t.Logf("built the demo and the redrive command in %v", time.Since(start).Round(time.Second))
}

// runbookBlocks returns the lines of the ```sh blocks of the section of the markdown file that starts with the
// heading, in order; comment lines and empty lines are left out.
func runbookBlocks(t *testing.T, path, heading string) [][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("%s has no %q section", path, heading)
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	var blocks [][]string
	var cur []string
	in := false
	for _, line := range strings.Split(section, "\n") {
		switch {
		case !in && line == "```sh":
			in, cur = true, nil
		case in && line == "```":
			in = false
			blocks = append(blocks, cur)
		case in && strings.TrimSpace(line) != "" && !strings.HasPrefix(strings.TrimSpace(line), "#"):
			cur = append(cur, line)
		}
	}
	if in {
		t.Fatalf("%s: unterminated code block in %q", path, heading)
	}
	return blocks
}

// waitForExports waits until the demo printed its export lines and the summary line after them, and returns the
// lines' NAME=VALUE parts.
func waitForExports(t *testing.T, ctx context.Context, out *lineBuffer, exited <-chan error) []string {
	t.Helper()
	timeout := time.NewTimer(90 * time.Second)
	defer timeout.Stop()
	for {
		if text := out.String(); strings.Contains(text, "\nStream local-pipeline, ") {
			var exports []string
			sc := bufio.NewScanner(strings.NewReader(text))
			for sc.Scan() {
				if kv, ok := strings.CutPrefix(sc.Text(), "export "); ok {
					exports = append(exports, kv)
				}
			}
			return exports
		}
		select {
		case <-out.notify:
		case err := <-exited:
			t.Fatalf("the demo exited before printing its endpoints: %v\n%s", err, out.String())
		case <-timeout.C:
			t.Fatalf("the demo printed no endpoints within 90 s:\n%s", out.String())
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
}

// runbookState is what the runbook's commands change.
type runbookState struct {
	data, errors int // items in the data and error tables
	fixable      int // error entries whose reason contains runbookFixedReason
	messages     int // messages in the queue, visible or not
}

func lookAt(t *testing.T, ctx context.Context, db *dynamodb.Client, sq *sqs.Client, queueURL string) runbookState {
	t.Helper()
	var s runbookState
	scan := func(table string) []map[string]string {
		out, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatalf("scan %s: %v", table, err)
		}
		var items []map[string]string
		for _, it := range out.Items {
			items = append(items, map[string]string{processor.ErrorAttrReason: str(it[processor.ErrorAttrReason])})
		}
		return items
	}
	s.data = len(scan(runbookTable))
	for _, it := range scan(runbookErrorTable) {
		s.errors++
		if strings.Contains(it[processor.ErrorAttrReason], runbookFixedReason) {
			s.fixable++
		}
	}
	attrs, err := sq.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(queueURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
	if err != nil {
		t.Fatalf("queue attributes: %v", err)
	}
	for _, k := range []string{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"} {
		n, _ := strconv.Atoi(attrs.Attributes[k])
		s.messages += n
	}
	return s
}

// lineBuffer collects a process's output and signals each write.
type lineBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	notify chan struct{}
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
	return b.buf.Write(p)
}

func (b *lineBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
