package selftest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
)

// cfnLimit is CloudFormation's limit on a custom resource response body (bytes on the wire).
const cfnLimit = 4096

// attackStacks answers DescribeStacks with one status.
type attackStacks struct{ status cftypes.StackStatus }

func (s attackStacks) DescribeStacks(context.Context, *cloudformation.DescribeStacksInput, ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error) {
	return &cloudformation.DescribeStacksOutput{Stacks: []cftypes.Stack{{StackStatus: s.status}}}, nil
}

// rawBodies records the raw bytes PUT to the presigned URL, as S3 receives them.
type rawBodies struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (r *rawBodies) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.bodies = append(r.bodies, b)
	r.mu.Unlock()
}

// TestAttackSelfTestReasonFitsCloudFormationLimit: a failure whose text JSON escapes heavily (comparisons like
// "<", ">", "&" in a transform's reason, quotes around keys, control characters, text cut inside a UTF-8 sequence)
// must still give a response body within CloudFormation's 4096 bytes, with a valid UTF-8 reason that keeps the
// failure's start (step and cause).
func TestAttackSelfTestReasonFitsCloudFormationLimit(t *testing.T) {
	head := "self-test failed at wait-item: canary-rejected; seen: reason: "
	tests := []struct {
		name string
		msg  string
	}{
		{"angle brackets", head + strings.Repeat("amount <= 0 && x > 1; ", 400)},
		{"quotes", head + strings.Repeat(`key {id="a"} `, 600)},
		{"control characters", head + strings.Repeat("\x01\x02\x1f", 2000)},
		{"multi-byte runes across the cut", head + strings.Repeat("é", 3000)},
		{"multi-byte runes across the cut, shifted by one", head + "x" + strings.Repeat("€", 2000)},
		{"multi-byte runes across the cut, shifted by two", head + "xx" + strings.Repeat("€", 2000)},
		{"long plain ascii", head + strings.Repeat("a", 10000)},
		{"long stack id and logical id", head + strings.Repeat("<", 1000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &rawBodies{}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			h := &Handler{
				Stacks: attackStacks{status: "UPDATE_IN_PROGRESS"},
				Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
				Run: func(context.Context, ...func(*Options)) (*Report, error) {
					return &Report{}, errors.New(tt.msg)
				},
			}
			logical := "SelfTest"
			stack := "arn:aws:cloudformation:us-east-1:123456789012:stack/s/guid"
			if strings.HasPrefix(tt.name, "long stack id") {
				logical = strings.Repeat("L", 255) // CloudFormation's longest logical id
				stack = "arn:aws:cloudformation:us-east-1:123456789012:stack/" + strings.Repeat("s", 128) + "/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
			}
			ev, _ := json.Marshal(map[string]any{
				"RequestType": "Update", "RequestId": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "ResponseURL": srv.URL + "/r",
				"ResourceType": "Custom::KdpSelfTest", "LogicalResourceId": logical, "PhysicalResourceId": "kdp-selftest-" + logical,
				"StackId": stack, "ResourceProperties": map[string]any{"ServiceToken": "arn:fn"},
			})
			if _, err := h.Invoke(context.Background(), ev); err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if len(rec.bodies) != 1 {
				t.Fatalf("%d responses, want 1", len(rec.bodies))
			}
			body := rec.bodies[0]
			if len(body) > cfnLimit {
				t.Errorf("response body is %d bytes, CloudFormation accepts at most %d", len(body), cfnLimit)
			}
			var got struct{ Status, Reason string }
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("response is not JSON: %v", err)
			}
			if got.Status != "FAILED" || !strings.HasPrefix(got.Reason, head) {
				t.Errorf("status %s, reason %.80q: want FAILED with the failure's start", got.Status, got.Reason)
			}
			if strings.ContainsRune(got.Reason, utf8.RuneError) {
				t.Errorf("reason holds U+FFFD: it was cut inside a UTF-8 sequence")
			}
		})
	}
}

// TestAttackSelfTestOddCustomResourceRequests: request shapes CloudFormation may send, or a forger may: each gets
// exactly one answer, a request type the handler does not know and a Delete never run the self-test nor fail, and
// every answer carries a physical id (an empty one fails the request in CloudFormation).
func TestAttackSelfTestOddCustomResourceRequests(t *testing.T) {
	tests := []struct {
		name        string
		requestType string
		physicalID  string
		status      cftypes.StackStatus
		wantRun     bool
		wantStatus  string
	}{
		{"unknown request type", "Replace", "kdp-selftest-SelfTest", "UPDATE_IN_PROGRESS", false, "SUCCESS"},
		{"delete without a physical id", "Delete", "", "DELETE_IN_PROGRESS", false, "SUCCESS"},
		{"delete during an update rollback's cleanup", "Delete", "kdp-selftest-SelfTest", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", false, "SUCCESS"},
		{"update without a physical id", "Update", "", "UPDATE_IN_PROGRESS", true, "FAILED"},
		{"update during an import rollback", "Update", "kdp-selftest-SelfTest", "IMPORT_ROLLBACK_IN_PROGRESS", false, "SUCCESS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &rawBodies{}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			ran := false
			h := &Handler{
				Stacks: attackStacks{status: tt.status},
				Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
				Run: func(context.Context, ...func(*Options)) (*Report, error) {
					ran = true
					return &Report{}, errors.New("self-test failed at put-canary: put-failed")
				},
			}
			ev, _ := json.Marshal(map[string]any{
				"RequestType": tt.requestType, "RequestId": "r", "ResponseURL": srv.URL + "/r", "ResourceType": "Custom::KdpSelfTest",
				"LogicalResourceId": "SelfTest", "PhysicalResourceId": tt.physicalID,
				"StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/s/guid",
			})
			if _, err := h.Invoke(context.Background(), ev); err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if ran != tt.wantRun {
				t.Errorf("self-test ran: %v, want %v", ran, tt.wantRun)
			}
			if len(rec.bodies) != 1 {
				t.Fatalf("%d answers, want 1", len(rec.bodies))
			}
			var got struct{ Status, PhysicalResourceID string }
			if err := json.Unmarshal(rec.bodies[0], &got); err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.wantStatus || got.PhysicalResourceID == "" {
				t.Errorf("answer %s, want status %s and a physical id", rec.bodies[0], tt.wantStatus)
			}
		})
	}
}
func TestAttackSelfTestResponseURLNeverAnswers(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	h := &Handler{Stacks: attackStacks{status: "DELETE_IN_PROGRESS"}, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Run: func(context.Context, ...func(*Options)) (*Report, error) { return &Report{}, nil }}
	ev, _ := json.Marshal(map[string]any{"RequestType": "Delete", "RequestId": "r", "ResponseURL": srv.URL + "/r",
		"LogicalResourceId": "SelfTest", "PhysicalResourceId": "p", "StackId": "arn:aws:cloudformation:us-east-1:1:stack/s/g"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := h.Invoke(ctx, ev); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Invoke reported success though the answer never arrived")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Invoke still waiting for the response URL 14 s after the invocation's deadline")
	}
}

// TestAttackSelfTestHostileResponseURL: a ResponseURL that refuses the answer with a huge reply, or cannot be
// reached: the invocation fails (CloudFormation got no answer), and the error names neither the presigned URL nor
// the reply's content.
func TestAttackSelfTestHostileResponseURL(t *testing.T) {
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		chunk := []byte(strings.Repeat("<script>evil</script>\n", 1000))
		for i := 0; i < 500; i++ { // about 11 MB
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer hostile.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	for _, responseURL := range []string{hostile.URL + "/signed?X-Amz-Signature=secret", closedURL + "/signed?X-Amz-Signature=secret"} {
		h := &Handler{Stacks: attackStacks{status: "DELETE_IN_PROGRESS"}, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
			Run: func(context.Context, ...func(*Options)) (*Report, error) { return &Report{}, nil }}
		ev, _ := json.Marshal(map[string]any{"RequestType": "Delete", "RequestId": "r", "ResponseURL": responseURL,
			"LogicalResourceId": "SelfTest", "PhysicalResourceId": "p", "StackId": "arn:aws:cloudformation:us-east-1:1:stack/s/g"})
		_, err := h.Invoke(context.Background(), ev)
		if err == nil {
			t.Errorf("%s: Invoke succeeded though the answer was not accepted", responseURL)
			continue
		}
		if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "evil") {
			t.Errorf("error %q names the URL or the reply", err)
		}
	}
}

// TestAttackSelfTestBrokenSetupStillAnswersDelete: the function's setup fails (its configuration file is missing
// or its environment broken, say a bundling bug). Delete must still succeed, or a failed first deployment's rollback,
// and the stack's deletion, wait for the ServiceTimeout and end in ROLLBACK_FAILED / DELETE_FAILED.
func TestAttackSelfTestBrokenSetupStillAnswersDelete(t *testing.T) {
	t.Setenv(EnvConfigFile, t.TempDir()+"/missing-selftest.json")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	rec := &rawBodies{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	h, err := newHandler(context.Background(), slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if h == nil {
		t.Fatalf("setup error %v leaves no handler: the function exits and CloudFormation's Delete is never answered", err)
	}
	ev, _ := json.Marshal(map[string]any{"RequestType": "Delete", "RequestId": "r", "ResponseURL": srv.URL + "/r",
		"LogicalResourceId": "SelfTest", "PhysicalResourceId": "kdp-selftest-SelfTest", "StackId": "arn:aws:cloudformation:us-east-1:1:stack/s/g"})
	if _, err := h.Invoke(context.Background(), ev); err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if len(rec.bodies) != 1 || !strings.Contains(string(rec.bodies[0]), `"Status":"SUCCESS"`) {
		t.Errorf("answers %q, want one SUCCESS", rec.bodies)
	}
	// A direct run reports the setup problem.
	if _, err := h.Invoke(context.Background(), json.RawMessage(`{}`)); err == nil || !strings.Contains(err.Error(), "missing-selftest.json") {
		t.Errorf("direct run = %v, want the setup error", err)
	}
}
