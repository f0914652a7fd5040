//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/localrun"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/selftest"
)

// cloudFormation plays CloudFormation's two parts in a custom resource request: DescribeStacks (the AWS query
// protocol, XML) with a chosen status, and the presigned response URL, recording the responses PUT there.
type cloudFormation struct {
	mu        sync.Mutex
	status    string
	responses []map[string]any
}

func (c *cloudFormation) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Method == http.MethodPut {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.responses = append(c.responses, body)
		return
	}
	if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "DescribeStacks" {
		http.Error(w, "unexpected request", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><DescribeStacksResult><Stacks><member>`+
		`<StackName>s</StackName><StackId>%s</StackId><CreationTime>2026-01-01T00:00:00Z</CreationTime><StackStatus>%s</StackStatus>`+
		`</member></Stacks></DescribeStacksResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DescribeStacksResponse>`,
		r.Form.Get("StackName"), c.status)
}

// TestSelfTestFunction runs the real self-test bootstrap under aws-lambda-rie against the real processor bootstrap
// behind the local event source mapping, configured as the construct configures both: invoked directly, and as a
// CloudFormation custom resource (Create, Update during a rollback, Update while the pipeline cannot process).
func TestSelfTestFunction(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	root, err := emulators.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bootstrap, err := localrun.BuildBootstrap(ctx, root, "./runtime/cmd/selftest", dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := selftest.Config{Pipeline: processor.DefaultConfig(), Malformed: true}
	cfgJSON, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, selftest.ConfigFileName), cfgJSON, 0o644); err != nil {
		t.Fatal(err)
	}

	p := newPipeline(t, ctx, 1, processor.DefaultConfig(), dynamostandin.Options{})
	var logs emulators.LockedBuffer
	proc := p.rie(t, ctx, 30*time.Second, io.Discard)
	runner := p.runner(t, proc)
	cf := &cloudFormation{status: "CREATE_IN_PROGRESS"}
	cfSrv := httptest.NewServer(cf)
	defer cfSrv.Close()
	st, err := localrun.StartRIE(ctx, localrun.RIEOptions{
		RIE: binaries.rie, Bootstrap: bootstrap, Timeout: 60 * time.Second, Output: &logs,
		Env: []string{
			selftest.EnvConfigFile + "=" + filepath.Join(dir, selftest.ConfigFileName),
			selftest.EnvStreamName + "=" + p.stream,
			processor.EnvTableName + "=" + p.table,
			processor.EnvErrorTableName + "=" + p.errTable,
			selftest.EnvTimeoutSeconds + "=5",
			"AWS_REGION=" + emulators.Region,
			"AWS_ACCESS_KEY_ID=AKIDEMULATOR",
			"AWS_SECRET_ACCESS_KEY=emulator-secret",
			"AWS_EC2_METADATA_DISABLED=true",
			"AWS_ENDPOINT_URL_KINESIS=" + aws.ToString(p.kc.Options().BaseEndpoint),
			"AWS_ENDPOINT_URL_DYNAMODB=" + p.standin.URL(),
			"AWS_ENDPOINT_URL_CLOUDFORMATION=" + cfSrv.URL,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	customResource := func(requestType string) []byte {
		b, _ := json.Marshal(map[string]any{
			"RequestType": requestType, "RequestId": requestType + "-1", "ResponseURL": cfSrv.URL + "/response",
			"ResourceType": "Custom::KdpSelfTest", "LogicalResourceId": "SelfTest", "PhysicalResourceId": "kdp-selftest-SelfTest",
			"StackId": "arn:aws:cloudformation:us-east-1:000000000000:stack/s/guid", "ResourceProperties": map[string]any{"ServiceToken": "arn"},
		})
		return b
	}
	lastResponse := func(t *testing.T) map[string]any {
		t.Helper()
		cf.mu.Lock()
		defer cf.mu.Unlock()
		if len(cf.responses) == 0 {
			t.Fatal("no response sent to CloudFormation")
		}
		return cf.responses[len(cf.responses)-1]
	}
	// The pipeline runs only while run is true.
	runPipeline := func(t *testing.T) {
		rctx, rcancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- runner.Run(rctx) }()
		t.Cleanup(func() { rcancel(); <-done })
	}

	t.Run("direct invocation passes", func(t *testing.T) {
		runPipeline(t)
		out, err := st.Invoke(ctx, []byte(`{}`))
		if err != nil {
			t.Fatalf("invoke: %v\n%s", err, logs.String())
		}
		var report selftest.Report
		if err := json.Unmarshal(out, &report); err != nil || report.Nonce == "" || len(report.Deleted) != 2 {
			t.Fatalf("report %s: %v", out, err)
		}
	})
	t.Run("create passes", func(t *testing.T) {
		runPipeline(t)
		if _, err := st.Invoke(ctx, customResource("Create")); err != nil {
			t.Fatal(err)
		}
		if got := lastResponse(t); got["Status"] != "SUCCESS" || got["RequestId"] != "Create-1" {
			t.Errorf("response %v\n%s", got, logs.String())
		}
	})
	t.Run("update fails while the pipeline does not process", func(t *testing.T) {
		cf.mu.Lock()
		cf.status = "UPDATE_IN_PROGRESS"
		cf.mu.Unlock()
		if _, err := st.Invoke(ctx, customResource("Update")); err != nil {
			t.Fatal(err)
		}
		got := lastResponse(t)
		if reason, _ := got["Reason"].(string); got["Status"] != "FAILED" || !strings.Contains(reason, string(selftest.CauseItemNotWritten)) {
			t.Errorf("response %v", got)
		}
	})
	t.Run("update during a rollback succeeds without testing", func(t *testing.T) {
		cf.mu.Lock()
		cf.status = "UPDATE_ROLLBACK_IN_PROGRESS"
		cf.mu.Unlock()
		before := strings.Count(logs.String(), "self-test canary put")
		if _, err := st.Invoke(ctx, customResource("Update")); err != nil {
			t.Fatal(err)
		}
		if got := lastResponse(t); got["Status"] != "SUCCESS" {
			t.Errorf("response %v\n%s", got, logs.String())
		}
		if after := strings.Count(logs.String(), "self-test canary put"); after != before || !strings.Contains(logs.String(), "the stack is rolling back") {
			t.Errorf("the self-test ran during a rollback:\n%s", logs.String())
		}
	})
	t.Run("direct invocation fails with the cause", func(t *testing.T) {
		_, err := st.Invoke(ctx, []byte(`{}`))
		var fe *localrun.FunctionError
		if !errors.As(err, &fe) || !strings.Contains(fe.Message, "wait-item: item-not-written") {
			t.Errorf("invoke = %v, want a function error naming the step and cause", err)
		}
	})
}
