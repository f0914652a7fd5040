//go:build integration

package kdplocal

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
	replaycli "github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/replay/cli"
)

// synthExample synthesizes examples/<name> with bundling into a temporary cloud assembly and returns its directory.
func synthExample(t *testing.T, name string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "cdk.out")
	cmd := exec.Command("go", "run", ".")
	cmd.Dir = filepath.Join("..", "..", "examples", name)
	cmd.Env = append(os.Environ(), "CDK_OUTDIR="+out, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("synth examples/%s: %v\n%s", name, err, b)
	}
	return out
}

// editTemplate rewrites the stack's template in dir with edit.
func editTemplate(t *testing.T, dir, stack string, edit func(res map[string]any)) {
	t.Helper()
	path := filepath.Join(dir, stack+".template.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tmpl map[string]any
	if err := json.Unmarshal(raw, &tmpl); err != nil {
		t.Fatal(err)
	}
	edit(tmpl["Resources"].(map[string]any))
	writeJSON(t, path, tmpl)
}

// copyDir copies the cloud assembly src to a new directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "cdk.out")
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v %s", err, out)
	}
	return dst
}

func ofType(res map[string]any, typ string) (string, map[string]any) {
	for id, r := range res {
		if rm := r.(map[string]any); rm["Type"] == typ {
			return id, rm["Properties"].(map[string]any)
		}
	}
	return "", nil
}

// mappedFunction returns the properties of the function the event source mapping invokes (the stack has other
// functions, such as the self-test's).
func mappedFunction(res map[string]any) map[string]any {
	_, esm := ofType(res, "AWS::Lambda::EventSourceMapping")
	ref, _ := esm["FunctionName"].(map[string]any)
	id, _ := ref["Ref"].(string)
	fn, ok := res[id].(map[string]any)
	if !ok || fn["Type"] != "AWS::Lambda::Function" {
		panic(fmt.Sprintf("the mapping's FunctionName %v names no function of the template", esm["FunctionName"]))
	}
	return fn["Properties"].(map[string]any)
}

// attr returns the scalar value of an attribute in attribute-value JSON ({"S": v} or {"N": v}).
func attr(item map[string]map[string]any, name string) any {
	for _, v := range item[name] {
		return v
	}
	return nil
}

const stack = "KinesisDynamoPipelineBasic"

// TestLocalBasic runs the basic example's pipeline through kdp local: a good record lands in the table, a
// malformed one in the error table; then variants of its template: without an error table and with one retry, the
// malformed record is given up on into an S3 on-failure destination (with its payload; with --keep, the object is
// read back through the local S3 server whose endpoint kdp local prints), or lost without one.
func TestLocalBasic(t *testing.T) {
	synthesized := synthExample(t, "basic")
	records := `{"data": {"Timestamp": "2024-09-13T23:06:55Z", "Value": 81, "Category": "C"}, "partitionKey": "sensor-c"}
{"dataBase64": "` + base64.StdEncoding.EncodeToString([]byte(`{"Value": `)) + `", "partitionKey": "broken"}
`
	noErrorTable := func(res map[string]any) {
		fn := mappedFunction(res)
		delete(fn["Environment"].(map[string]any)["Variables"].(map[string]any), "PIPELINE_ERROR_TABLE_NAME")
		_, esm := ofType(res, "AWS::Lambda::EventSourceMapping")
		esm["MaximumRetryAttempts"] = 1
	}
	tests := []struct {
		name          string
		edit          func(res map[string]any)
		keep          bool // run with --keep: run the printed kdp replay; read S3 objects through the printed endpoint
		wantCode      int
		wantErrors    int
		wantOnFailure int
		wantLost      int64
		wantReplay    int // the exit status of the printed kdp replay (1: a record nothing can store is left)
	}{
		{name: "as synthesized", keep: true, wantCode: ExitOK, wantErrors: 1},
		{name: "S3 destination, no error table", edit: func(res map[string]any) {
			noErrorTable(res)
			res["FailureBucket"] = map[string]any{"Type": "AWS::S3::Bucket"}
			_, esm := ofType(res, "AWS::Lambda::EventSourceMapping")
			esm["DestinationConfig"] = map[string]any{"OnFailure": map[string]any{"Destination": map[string]any{"Fn::GetAtt": []any{"FailureBucket", "Arn"}}}}
		}, keep: true, wantCode: ExitOK, wantOnFailure: 1, wantReplay: 1},
		{name: "no destination, no error table", edit: func(res map[string]any) {
			noErrorTable(res)
			_, esm := ofType(res, "AWS::Lambda::EventSourceMapping")
			delete(esm, "DestinationConfig")
		}, wantCode: ExitLost, wantLost: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := synthesized
			if tt.edit != nil {
				dir = copyDir(t, synthesized)
				editTemplate(t, dir, stack, tt.edit)
			}
			args := []string{"--cdk-out", dir, "--stack", stack, "--json"}
			var stdout, stderr emulators.LockedBuffer
			var code int
			var objects []map[string]any
			if tt.keep {
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan int)
				go func() { done <- Main(ctx, append(args, "--keep"), strings.NewReader(records), &stdout, &stderr) }()
				select {
				case code = <-done:
					cancel()
					t.Fatalf("exit %d before --keep printed its endpoints\nstderr: %s", code, stderr.String())
				case <-waitFor(&stderr, "kdp replay "):
				}
				if tt.wantOnFailure > 0 {
					objects = readBucket(t, stderr.String())
				}
				runReplay(t, stderr.String(), 2, tt.wantErrors, tt.wantReplay)
				cancel()
				code = <-done
			} else {
				code = Main(context.Background(), args, strings.NewReader(records), &stdout, &stderr)
			}
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstderr: %s\nstdout: %s", code, tt.wantCode, stderr.String(), stdout.String())
			}
			var res struct {
				Table      []map[string]map[string]any `json:"table"`
				ErrorTable []map[string]map[string]any `json:"errorTable"`
				OnFailure  []map[string]any            `json:"onFailure"`
				Lost       int64                       `json:"lost"`
			}
			if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
				t.Fatalf("output is not the JSON object: %v\n%s", err, stdout.String())
			}
			if len(res.Table) != 1 || attr(res.Table[0], "Value") != "81" || attr(res.Table[0], "Category") != "C" {
				t.Errorf("table: %v", res.Table)
			}
			if len(res.ErrorTable) != tt.wantErrors {
				t.Errorf("error table: %d items, want %d: %v", len(res.ErrorTable), tt.wantErrors, res.ErrorTable)
			}
			if tt.wantErrors == 1 {
				e := res.ErrorTable[0]
				if attr(e, "partitionKey") != "broken" || attr(e, "payload") != base64.StdEncoding.EncodeToString([]byte(`{"Value": `)) {
					t.Errorf("error item: %v", e)
				}
			}
			if len(res.OnFailure) != tt.wantOnFailure {
				t.Errorf("on-failure: %d records, want %d: %v", len(res.OnFailure), tt.wantOnFailure, res.OnFailure)
			}
			if tt.wantOnFailure == 1 {
				info, _ := res.OnFailure[0]["KinesisBatchInfo"].(map[string]any)
				payload, _ := res.OnFailure[0]["payload"].(string)
				// MaximumRetryAttempts 1: the first invocation and one retry.
				if info["batchSize"] != 1.0 || !strings.Contains(payload, "partitionKey") || !strings.Contains(payload, "broken") {
					t.Errorf("on-failure record: %v", res.OnFailure[0])
				}
			}
			if res.Lost != tt.wantLost {
				t.Errorf("lost %d, want %d", res.Lost, tt.wantLost)
			}
			if tt.keep {
				if len(objects) != len(res.OnFailure) {
					t.Fatalf("bucket holds %d objects, --json printed %d on-failure records", len(objects), len(res.OnFailure))
				}
				for i := range objects {
					if !reflect.DeepEqual(objects[i], res.OnFailure[i]) {
						t.Errorf("object %d in the bucket: %v\n--json printed: %v", i, objects[i], res.OnFailure[i])
					}
				}
			}
		})
	}
}

// runReplay runs the kdp replay command --keep printed, against the emulators it printed, and checks from dynalite
// that the replay read every record put and changed nothing: one item in the table, wantErrors in the error table.
func runReplay(t *testing.T, stderr string, wantRead, wantErrors, wantCode int) {
	t.Helper()
	line := regexp.MustCompile(`(?m)^  (kdp replay --stream arn:aws:kinesis:\S+ --since \S+ --table (\S+)( --error-table (\S+))?( --config \S+)?)$`).FindStringSubmatch(stderr)
	if line == nil {
		t.Fatalf("--keep printed no kdp replay line:\n%s", stderr)
	}
	for _, name := range []string{"KINESIS", "DYNAMODB"} {
		m := regexp.MustCompile(`(?m)^export AWS_ENDPOINT_URL_` + name + `=(http://127\.0\.0\.1:\d+)$`).FindStringSubmatch(stderr)
		if m == nil {
			t.Fatalf("--keep printed no AWS_ENDPOINT_URL_%s:\n%s", name, stderr)
		}
		t.Setenv("AWS_ENDPOINT_URL_"+name, m[1])
	}
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
	var out, errOut bytes.Buffer
	args := strings.Fields(line[1])[2:] // without "kdp replay"
	if code := replaycli.Main(context.Background(), args, &out, &errOut); code != wantCode {
		t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", line[1], code, wantCode, out.String(), errOut.String())
	}
	if want := fmt.Sprintf("records: %d read,", wantRead); !strings.Contains(out.String(), want) {
		t.Errorf("replay summary does not say %q:\n%s", want, out.String())
	}
	db := dynamodb.New(dynamodb.Options{Region: "us-east-1", BaseEndpoint: aws.String(os.Getenv("AWS_ENDPOINT_URL_DYNAMODB")),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", "")})
	count := func(table string) int {
		res, err := db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table)})
		if err != nil {
			t.Fatalf("scan %s after the replay: %v", table, err)
		}
		return len(res.Items)
	}
	if n := count(line[2]); n != 1 {
		t.Errorf("after the replay the table holds %d items, want 1", n)
	}
	if line[4] != "" {
		if n := count(line[4]); n != wantErrors {
			t.Errorf("after the replay the error table holds %d items, want %d", n, wantErrors)
		}
	}
}

// waitFor returns a channel closed once b holds text.
func waitFor(b *emulators.LockedBuffer, text string) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for !strings.Contains(b.String(), text) {
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return ch
}

// readBucket reads, with the SDK's S3 client, every object under the prefix of the redrive command --keep printed,
// from the endpoint and bucket it printed; it checks the printed aws s3 ls and redrive lines name them.
func readBucket(t *testing.T, stderr string) []map[string]any {
	t.Helper()
	endpoint := regexp.MustCompile(`(?m)^export AWS_ENDPOINT_URL_S3=(http://127\.0\.0\.1:\d+)$`).FindStringSubmatch(stderr)
	redrive := regexp.MustCompile(`kdp redrive s3 --bucket (\S+) --prefix (aws/lambda/[0-9a-f-]+/) --stream (arn:aws:kinesis:\S+) --table \S+`).FindStringSubmatch(stderr)
	if endpoint == nil || redrive == nil {
		t.Fatalf("--keep printed no S3 endpoint or redrive line:\n%s", stderr)
	}
	if ls := "aws s3 ls --endpoint-url " + endpoint[1] + " --recursive s3://" + redrive[1] + "/"; !strings.Contains(stderr, ls) {
		t.Errorf("--keep printed no %q:\n%s", ls, stderr)
	}
	ctx := context.Background()
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint[1]), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", "")})
	list, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(redrive[1]), Prefix: aws.String(redrive[2])})
	if err != nil {
		t.Fatalf("list the bucket --keep printed: %v", err)
	}
	var out []map[string]any
	for _, o := range list.Contents {
		get, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(redrive[1]), Key: o.Key})
		if err != nil {
			t.Fatalf("get %s: %v", aws.ToString(o.Key), err)
		}
		var obj map[string]any
		err = json.NewDecoder(get.Body).Decode(&obj)
		_ = get.Body.Close()
		if err != nil {
			t.Fatalf("object %s is not JSON: %v", aws.ToString(o.Key), err)
		}
		if src, _ := obj["KinesisBatchInfo"].(map[string]any)["streamArn"].(string); src != redrive[3] {
			t.Errorf("object %s names stream %q; the redrive line %q", aws.ToString(o.Key), src, redrive[3])
		}
		out = append(out, obj)
	}
	return out
}

// TestLocalCustomProcessor runs the custom-processor example: its own main package (a ProcessorEntry, built for
// this host from the package path its arm64 bootstrap records) under aws-lambda-rie writes two items a record.
func TestLocalCustomProcessor(t *testing.T) {
	app := filepath.Join("..", "..", "examples", "custom-processor")
	out := synthExample(t, "custom-processor")
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"--cdk-out", out, "--stack", "KinesisDynamoPipelineCustomProcessor", "--app-dir", app, "--json"},
		strings.NewReader(`{"data": {"Timestamp": "2024-09-13T23:06:55Z", "Value": 81, "Category": "C"}, "partitionKey": "sensor-c"}`+"\n"),
		&stdout, &stderr)
	if code != ExitOK {
		t.Fatalf("exit %d\nstderr: %s\nstdout: %s", code, stderr.String(), stdout.String())
	}
	var res struct {
		Table []map[string]map[string]any `json:"table"`
		Lost  int64                       `json:"lost"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("output: %v\n%s", err, stdout.String())
	}
	ids := map[any]bool{}
	for _, it := range res.Table {
		ids[attr(it, "id")] = true
		if attr(it, "CategoryName") != "Pressure" {
			t.Errorf("item without the enrichment: %v", it)
		}
	}
	if len(res.Table) != 2 || !ids["latest#C"] || res.Lost != 0 {
		t.Errorf("want the record's item and latest#C, lost 0; got %v, lost %d", res.Table, res.Lost)
	}
}

// TestLocalCustomTransform runs the custom-transform example: keys from the payload, a computed attribute, the
// schema and the filter, as its pipeline.json configures the default processor.
func TestLocalCustomTransform(t *testing.T) {
	out := synthExample(t, "custom-transform")
	records := `{"data": {"Timestamp": "2024-09-13T23:06:55.934081Z", "Value": 81, "Category": "C"}, "partitionKey": "sensor-c"}
{"data": {"Timestamp": "2024-09-13T23:06:56Z", "Value": 1, "Category": "TEST"}, "partitionKey": "sensor-t"}
{"data": {"Timestamp": "2024-09-13T23:06:57Z", "Value": "high", "Category": "C"}, "partitionKey": "sensor-x"}
`
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"--cdk-out", out, "--stack", "KinesisDynamoPipelineCustomTransform", "--json"},
		strings.NewReader(records), &stdout, &stderr)
	if code != ExitOK {
		t.Fatalf("exit %d\nstderr: %s\nstdout: %s", code, stderr.String(), stdout.String())
	}
	var res struct {
		Table      []map[string]map[string]any `json:"table"`
		ErrorTable []map[string]map[string]any `json:"errorTable"`
		Lost       int64                       `json:"lost"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("output: %v\n%s", err, stdout.String())
	}
	// The sample record with its computed value (Value * 2); the TEST record filtered out by the transform; the
	// record failing the schema in the error table.
	if len(res.Table) != 1 || attr(res.Table[0], "ProcessedValue") != "162" || attr(res.Table[0], "Category") != "C" ||
		attr(res.Table[0], "Timestamp") != "2024-09-13T23:06:55.934081Z" {
		t.Errorf("table: %v", res.Table)
	}
	if len(res.ErrorTable) != 1 || attr(res.ErrorTable[0], "partitionKey") != "sensor-x" {
		t.Errorf("error table: %v", res.ErrorTable)
	}
	if res.Lost != 0 {
		t.Errorf("lost %d", res.Lost)
	}
	if !strings.Contains(stderr.String(), "TTL on expiresAt is not applied") {
		t.Errorf("no TTL warning: %s", stderr.String())
	}
}

// TestLocalTwoPipelines synthesizes, with bundling, a stack holding two pipelines (one nested in a construct):
// without --pipeline kdp local names both in a one-line usage error; with --pipeline it runs the one chosen.
func TestLocalTwoPipelines(t *testing.T) {
	app, out := testutil.BundlingApp(t)
	testutil.Must(t, func() {
		st := awscdk.NewStack(app, jsii.String("Two"), nil)
		kinesispipeline.NewKinesisDynamoPipeline(st, jsii.String("Orders"), nil)
		kinesispipeline.NewKinesisDynamoPipeline(constructs.NewConstruct(st, jsii.String("Group")), jsii.String("Payments"),
			&kinesispipeline.KinesisDynamoPipelineProps{ShardCount: jsii.Number(2)})
		app.Synth(nil)
	})
	record := `{"data": {"id": "p-1", "amount": 12}, "partitionKey": "p-1"}` + "\n"
	tests := []struct {
		name       string
		pipeline   []string
		wantCode   int
		wantStdout []string // regular expressions
		wantStderr []string
	}{
		{name: "none chosen", wantCode: ExitUsage,
			wantStderr: []string{`^kdp local: stack Two has 2 pipelines; choose one with --pipeline: Two/Group/Payments, Two/Orders\n$`}},
		{name: "chosen by path without the stack", pipeline: []string{"--pipeline", "Group/Payments"}, wantCode: ExitOK,
			wantStdout: []string{`(?m)^Pipeline Two/Group/Payments: put 1 records; .* 0 lost$`, `(?m)^table GroupPaymentsTable[0-9A-F]{8}: 1$`, `"amount":\{"N":"12"\}`}},
		{name: "chosen by whole path", pipeline: []string{"--pipeline", "Two/Orders"}, wantCode: ExitOK,
			wantStdout: []string{`(?m)^Pipeline Two/Orders: put 1 records; .* 0 lost$`, `(?m)^table OrdersTable[0-9A-F]{8}: 1$`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"--cdk-out", out, "--stack", "Two"}, tt.pipeline...)
			code := Main(context.Background(), args, strings.NewReader(record), &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstderr: %s\nstdout: %s", code, tt.wantCode, stderr.String(), stdout.String())
			}
			for _, re := range tt.wantStdout {
				if !regexp.MustCompile(re).MatchString(stdout.String()) {
					t.Errorf("stdout does not match %s:\n%s", re, stdout.String())
				}
			}
			for _, re := range tt.wantStderr {
				if !regexp.MustCompile(re).MatchString(stderr.String()) {
					t.Errorf("stderr does not match %s:\n%s", re, stderr.String())
				}
			}
		})
	}
}
