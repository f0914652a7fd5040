package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// spoof is what a forger would put in printed fields beyond evil: OSC sequences (window title, hyperlink), a raw C1
// CSI, a tab, line and paragraph separators, zero-width and bidirectional marks and isolates, a byte-order mark, a
// lone continuation byte and a truncated multi-byte sequence.
const spoof = "\x1b]0;owned\x07\x1b]8;;https://example.invalid\x1b\\link\x1b]8;;\x1b\\\u009b2J\t\u2028\u2029\u200b\u200f\u061c\u2066\u2069\ufeff\x80\xe2\x80"

// checkStrict fails unless every line of out is printable text: printable ASCII, or a rune unicode.IsPrint accepts
// that is not a format character; lines end with LF only.
func checkStrict(t *testing.T, what, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Errorf("%s holds invalid UTF-8: %q", what, out)
		return
	}
	for _, r := range out {
		if r == '\n' {
			continue
		}
		if r < 0x20 || r == 0x7f || !unicode.IsPrint(r) || unicode.Is(unicode.Cf, r) {
			t.Errorf("%s holds %U: %q", what, r, out)
			return
		}
	}
}

// TestAttackFormatResultUnicode: OSC sequences, C1 controls, separators, invisible and bidirectional marks and
// broken UTF-8 in any printed field come out as escapes on one line.
func TestAttackFormatResultUnicode(t *testing.T) {
	for _, field := range []string{"source", "shard", "start", "end", "reason", "outcome"} {
		t.Run(field, func(t *testing.T) {
			res := redrive.Result{Source: "s3://b/k", Outcome: redrive.OutcomeFailed, ShardID: "shardId-000000000000",
				StartSequenceNumber: "1", EndSequenceNumber: "2", Reason: "r"}
			switch field {
			case "source":
				res.Source += spoof
			case "shard":
				res.ShardID = spoof
			case "start":
				res.StartSequenceNumber = spoof
			case "end":
				res.EndSequenceNumber = spoof
			case "reason":
				res.Reason = spoof
			case "outcome":
				res.Outcome = redrive.Outcome(spoof)
			}
			got := formatResult(res)
			checkStrict(t, "formatResult", got)
			if !strings.Contains(got, `\x1b]0;owned\a\x1b]8;;https://example.invalid\x1b\\link`) || !strings.Contains(got, `\u2028\u2029\u200b\u200f\u061c\u2066\u2069\ufeff\x80\xe2\x80`) {
				t.Errorf("formatResult = %q, want the %s escaped", got, field)
			}
		})
	}
}

// attackS3 is a bucket of objects, listed in the order given; it deletes nothing.
type attackS3 struct {
	keys   []string
	bodies map[string][]byte
}

func (b *attackS3) ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	out := &s3.ListObjectsV2Output{}
	for _, k := range b.keys {
		out.Contents = append(out.Contents, s3types.Object{Key: aws.String(k)})
	}
	return out, nil
}

func (b *attackS3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	body, ok := b.bodies[aws.ToString(in.Key)]
	if !ok {
		return nil, errors.New("no such key: " + aws.ToString(in.Key))
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(body))}, nil
}

func (b *attackS3) DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	return nil, errors.New("attackS3: nothing may be deleted")
}

// TestAttackRunS3Escapes: object keys and payload records carrying escape sequences come out escaped on standard
// output and standard error (verbose logs included), and nothing they hold reads as a summary.
func TestAttackRunS3Escapes(t *testing.T) {
	const pinned = "arn:aws:kinesis:us-east-1:000000000000:stream/s"
	rng := `"KinesisBatchInfo":{"shardId":"shardId-000000000000","startSequenceNumber":"1","endSequenceNumber":"2","batchSize":2,"streamArn":"` + pinned + `"}`
	payload, err := json.Marshal(events.KinesisEvent{Records: []events.KinesisEventRecord{{
		EventID: "shardId-000000000000:1" + evil + spoof, EventSourceArn: "arn:aws:kinesis:us-east-1:000000000000:stream/" + evil + spoof,
		Kinesis: events.KinesisRecord{SequenceNumber: "1" + evil, PartitionKey: evil + spoof, Data: []byte(evil)},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	payloadJSON, err := json.Marshal(string(payload))
	if err != nil {
		t.Fatal(err)
	}
	foreignKey := "aws/lambda/m/" + evil + spoof + "/1"
	invalidKey := "aws/lambda/m/" + spoof + evil + "/2"
	bucket := &attackS3{keys: []string{foreignKey, invalidKey, "aws/lambda/m/missing" + evil}, bodies: map[string][]byte{
		foreignKey: []byte(`{` + rng + `,"payload":` + string(payloadJSON) + `}`),
		invalidKey: []byte(evil + spoof),
	}}
	clients := func(context.Context, clientOptions) (redrive.Clients, error) {
		return redrive.Clients{DB: &escDB{}, S3: bucket}, nil
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"s3", "--bucket", "b", "--table", "t", "--stream", pinned, "--verbose", "--delete"}, &stdout, &stderr, clients)
	if code != ExitLeftover {
		t.Errorf("exit %d, want %d", code, ExitLeftover)
	}
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	checkStrict(t, "stdout", stdout.String())
	checkStrict(t, "stderr", stderr.String())
	var left, summaries []string
	for _, line := range strings.Split(stdout.String(), "\n") {
		switch {
		case strings.HasPrefix(line, "LEFT "):
			left = append(left, line)
		case strings.Contains(line, "left behind:") || strings.HasPrefix(line, "redrive "):
			summaries = append(summaries, line)
		}
	}
	if len(left) != 3 || !strings.HasPrefix(left[0], "LEFT foreign-stream s3://b/aws/lambda/m/\\x1b[2J") ||
		!strings.HasPrefix(left[1], "LEFT invalid s3://b/aws/lambda/m/\\x1b]0;owned\\a") || !strings.HasPrefix(left[2], "LEFT failed s3://b/aws/lambda/m/missing\\x1b[2J") {
		t.Errorf("LEFT lines = %q", left)
	}
	if len(summaries) != 2 || summaries[1] != "  left behind: 3 (lines starting with LEFT above)" {
		t.Errorf("summary lines %q, want only the real summary:\n%s", summaries, stdout.String())
	}
}
