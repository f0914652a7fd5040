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

	"github.com/aws/aws-lambda-go/cfn"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
)

type fakeStacks struct {
	status cftypes.StackStatus
	err    error
}

func (f fakeStacks) DescribeStacks(_ context.Context, in *cloudformation.DescribeStacksInput, _ ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &cloudformation.DescribeStacksOutput{Stacks: []cftypes.Stack{{StackName: in.StackName, StackStatus: f.status}}}, nil
}

// responses is CloudFormation's side of the presigned response URL: it records the bodies PUT there.
type responses struct {
	mu     sync.Mutex
	bodies []map[string]any
}

func (r *responses) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var body map[string]any
	b, _ := io.ReadAll(req.Body)
	if req.Method != http.MethodPut || json.Unmarshal(b, &body) != nil {
		http.Error(w, "bad response", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.bodies = append(r.bodies, body)
	r.mu.Unlock()
}

func TestHandlerCustomResource(t *testing.T) {
	failure := &Failure{Step: StepWaitItem, Cause: CauseItemNotWritten, Evidence: []string{"event source mapping x: state Disabled"}}
	tests := []struct {
		name        string
		requestType string
		physicalID  string
		stacks      fakeStacks
		runErr      error
		wantRun     bool
		wantStatus  string
		wantReason  string // substring, for FAILED
		wantID      string
	}{
		{name: "create passes", requestType: "Create", stacks: fakeStacks{status: "CREATE_IN_PROGRESS"}, wantRun: true, wantStatus: "SUCCESS", wantID: "kdp-selftest-SelfTest"},
		{name: "create fails", requestType: "Create", stacks: fakeStacks{status: "CREATE_IN_PROGRESS"}, runErr: failure, wantRun: true,
			wantStatus: "FAILED", wantReason: "item-not-written", wantID: "kdp-selftest-SelfTest"},
		{name: "update fails", requestType: "Update", physicalID: "kdp-selftest-SelfTest", stacks: fakeStacks{status: "UPDATE_IN_PROGRESS"},
			runErr: failure, wantRun: true, wantStatus: "FAILED", wantReason: "state Disabled", wantID: "kdp-selftest-SelfTest"},
		{name: "update during an update rollback", requestType: "Update", physicalID: "kdp-selftest-SelfTest",
			stacks: fakeStacks{status: "UPDATE_ROLLBACK_IN_PROGRESS"}, runErr: failure, wantStatus: "SUCCESS", wantID: "kdp-selftest-SelfTest"},
		{name: "create during a rollback", requestType: "Create", stacks: fakeStacks{status: "ROLLBACK_IN_PROGRESS"}, runErr: failure,
			wantStatus: "SUCCESS", wantID: "kdp-selftest-SelfTest"},
		{name: "delete never runs nor fails", requestType: "Delete", physicalID: "kdp-selftest-SelfTest", stacks: fakeStacks{status: "DELETE_IN_PROGRESS"},
			runErr: failure, wantStatus: "SUCCESS", wantID: "kdp-selftest-SelfTest"},
		{name: "delete while rolling back a failed create", requestType: "Delete", physicalID: "kdp-selftest-SelfTest",
			stacks: fakeStacks{status: "ROLLBACK_IN_PROGRESS"}, runErr: failure, wantStatus: "SUCCESS", wantID: "kdp-selftest-SelfTest"},
		{name: "stack status unreadable: the test decides", requestType: "Update", physicalID: "kdp-selftest-SelfTest",
			stacks: fakeStacks{err: errors.New("throttled")}, runErr: failure, wantRun: true, wantStatus: "FAILED",
			wantReason: "status could not be read: describe stacks: throttled", wantID: "kdp-selftest-SelfTest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cf := &responses{}
			srv := httptest.NewServer(cf)
			defer srv.Close()
			ran := false
			h := &Handler{
				Stacks: tt.stacks,
				Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
				Run: func(ctx context.Context, fns ...func(*Options)) (*Report, error) {
					ran = true
					if tt.runErr != nil {
						return &Report{}, tt.runErr
					}
					return &Report{Nonce: "n", ItemAfter: 1500 * time.Millisecond}, nil
				},
			}
			ev, _ := json.Marshal(map[string]any{
				"RequestType": tt.requestType, "RequestId": "req-1", "ResponseURL": srv.URL + "/response",
				"ResourceType": "Custom::KdpSelfTest", "LogicalResourceId": "SelfTest", "PhysicalResourceId": tt.physicalID,
				"StackId":            "arn:aws:cloudformation:us-east-1:123456789012:stack/s/guid",
				"ResourceProperties": map[string]any{"ServiceToken": "arn:fn", "ConfigurationHash": "abc"},
			})
			if _, err := h.Invoke(context.Background(), ev); err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if ran != tt.wantRun {
				t.Errorf("self-test ran: %v, want %v", ran, tt.wantRun)
			}
			if len(cf.bodies) != 1 {
				t.Fatalf("%d responses sent, want 1", len(cf.bodies))
			}
			got := cf.bodies[0]
			if got["Status"] != tt.wantStatus || got["PhysicalResourceId"] != tt.wantID || got["RequestId"] != "req-1" || got["LogicalResourceId"] != "SelfTest" {
				t.Errorf("response %v, want status %s, id %s", got, tt.wantStatus, tt.wantID)
			}
			if reason, _ := got["Reason"].(string); tt.wantReason != "" && !strings.Contains(reason, tt.wantReason) {
				t.Errorf("reason %q does not mention %q", reason, tt.wantReason)
			}
		})
	}
}

func TestHandlerDirect(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		runErr  error
		wantErr bool
	}{
		{"aws lambda invoke passes", `{}`, nil, false},
		{"scheduled event fails", `{"source":"aws.events","detail-type":"Scheduled Event"}`, &Failure{Step: StepPutCanary, Cause: CausePutFailed}, true},
		{"not even an object", `"go"`, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var timeout time.Duration
			h := &Handler{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
				Respond: func(cfn.CustomResourceFunction) cfn.CustomResourceLambdaFunction {
					t.Fatal("a direct invocation was answered as a custom resource")
					return nil
				},
				Run: func(ctx context.Context, fns ...func(*Options)) (*Report, error) {
					o := Options{Timeout: DefaultTimeout}
					for _, fn := range fns {
						fn(&o)
					}
					timeout = o.Timeout
					return &Report{Nonce: "n"}, tt.runErr
				}}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, err := h.Invoke(ctx, json.RawMessage(tt.payload))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Invoke = %v, %v", out, err)
			}
			if !tt.wantErr {
				if r, ok := out.(*Report); !ok || r.Nonce != "n" {
					t.Errorf("Invoke returned %#v, want the report", out)
				}
			}
			// A minute left: the wait shrinks so the cleanup and the response fit.
			if timeout > time.Minute-responseReserve || timeout <= 0 {
				t.Errorf("self-test timeout %s with a minute left", timeout)
			}
		})
	}
}
