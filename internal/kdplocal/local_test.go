package kdplocal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/localrun"
)

// fixtureResources is a template with one pipeline, as the construct synthesizes it (trimmed to what kdp local reads).
func fixtureResources(prefix string) map[string]any {
	return map[string]any{
		prefix + "Stream": map[string]any{"Type": "AWS::Kinesis::Stream", "Properties": map[string]any{"ShardCount": 2.0}},
		prefix + "Table": map[string]any{"Type": "AWS::DynamoDB::GlobalTable", "Properties": map[string]any{
			"AttributeDefinitions":    []any{map[string]any{"AttributeName": "pk", "AttributeType": "N"}},
			"KeySchema":               []any{map[string]any{"AttributeName": "pk", "KeyType": "HASH"}},
			"TimeToLiveSpecification": map[string]any{"AttributeName": "expiresAt", "Enabled": true},
		}},
		prefix + "Errors": map[string]any{"Type": "AWS::DynamoDB::Table", "Properties": map[string]any{
			"AttributeDefinitions": []any{map[string]any{"AttributeName": "id", "AttributeType": "S"}},
			"KeySchema":            []any{map[string]any{"AttributeName": "id", "KeyType": "HASH"}},
		}},
		prefix + "Queue": map[string]any{"Type": "AWS::SQS::Queue"},
		prefix + "Function": map[string]any{"Type": "AWS::Lambda::Function", "Properties": map[string]any{
			"Code":    map[string]any{"S3Key": prefix + "hash.zip"},
			"Timeout": 30.0,
			"Environment": map[string]any{"Variables": map[string]any{
				"PIPELINE_TABLE_NAME":       map[string]any{"Ref": prefix + "Table"},
				"PIPELINE_ERROR_TABLE_NAME": map[string]any{"Ref": prefix + "Errors"},
				"REGION":                    map[string]any{"Ref": "AWS::Region"},
				"LITERAL":                   "x",
				"QUEUE_ARN":                 map[string]any{"Fn::GetAtt": []any{prefix + "Queue", "Arn"}},
			}},
		}},
		prefix + "Mapping": map[string]any{"Type": "AWS::Lambda::EventSourceMapping", "Metadata": map[string]any{
			"kdp:pipeline": map[string]any{"version": 1, "path": "S/" + prefix},
		}, "Properties": map[string]any{
			"EventSourceArn":                 map[string]any{"Fn::GetAtt": []any{prefix + "Stream", "Arn"}},
			"FunctionName":                   map[string]any{"Ref": prefix + "Function"},
			"BatchSize":                      7.0,
			"MaximumBatchingWindowInSeconds": 2.0,
			"StartingPosition":               "TRIM_HORIZON",
			"MaximumRetryAttempts":           3.0,
			"MaximumRecordAgeInSeconds":      120.0,
			"BisectBatchOnFunctionError":     true,
			"FunctionResponseTypes":          []any{"ReportBatchItemFailures"},
			"FilterCriteria":                 map[string]any{"Filters": []any{map[string]any{"Pattern": `{"data":{"a":[1]}}`}}},
			"DestinationConfig":              map[string]any{"OnFailure": map[string]any{"Destination": map[string]any{"Fn::GetAtt": []any{prefix + "Queue", "Arn"}}}},
		}},
	}
}

// writeAssembly writes a cloud assembly with one stack named stack holding resources, path metadata for each
// logical ID ("<stack>/<path>/Resource" from paths), and, when nested is set, puts the stack in a nested assembly.
func writeAssembly(t *testing.T, stack string, resources map[string]any, paths map[string]string, nested bool) string {
	t.Helper()
	top := t.TempDir()
	dir := top
	if nested {
		dir = filepath.Join(top, "assembly-Stage")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		writeJSON(t, filepath.Join(top, "manifest.json"), map[string]any{"version": "55.0.0", "artifacts": map[string]any{
			"assembly-Stage": map[string]any{"type": "cdk:cloud-assembly", "properties": map[string]any{"directoryName": "assembly-Stage"}},
		}})
	}
	meta := map[string]any{}
	for id, p := range paths {
		meta["/"+stack+"/"+p+"/Resource"] = []any{map[string]any{"type": "aws:cdk:logicalId", "data": id}}
	}
	writeJSON(t, filepath.Join(dir, stack+".template.json"), map[string]any{"Resources": resources})
	writeJSON(t, filepath.Join(dir, "manifest.json"), map[string]any{"version": "55.0.0", "artifacts": map[string]any{
		stack: map[string]any{"type": "aws:cloudformation:stack", "displayName": stack,
			"properties": map[string]any{"templateFile": stack + ".template.json"}, "metadata": meta},
	}})
	return top
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func merge(ms ...map[string]any) map[string]any {
	out := map[string]any{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// TestMainFailures: what kdp local cannot run ends with exit status 2 and one line on standard error, before any
// emulator starts.
func TestMainFailures(t *testing.T) {
	one := fixtureResources("A")
	imported := fixtureResources("A")
	imported["AFunction"].(map[string]any)["Properties"].(map[string]any)["Environment"] = map[string]any{"Variables": map[string]any{
		"PIPELINE_TABLE_NAME": map[string]any{"Fn::ImportValue": "SharedTable"}}}
	noESM := fixtureResources("A")
	delete(noESM, "AMapping")
	older := fixtureResources("A") // synthesized before the construct wrote its marker
	delete(older["AMapping"].(map[string]any), "Metadata")
	newer := fixtureResources("A")
	newer["AMapping"].(map[string]any)["Metadata"] = map[string]any{"kdp:pipeline": map[string]any{"version": 2, "path": "S/A"}}
	tests := []struct {
		name      string
		resources map[string]any
		args      []string
		records   string
		want      string
	}{
		{name: "no such stack", resources: one, args: []string{"--stack", "Other"}, want: `no stack "Other"`},
		{name: "no pipeline", resources: noESM, args: []string{"--stack", "S"}, want: "no pipeline in stack S"},
		{name: "two pipelines, none chosen", resources: merge(fixtureResources("A"), fixtureResources("B")), args: []string{"--stack", "S"}, want: "has 2 pipelines; choose one with --pipeline: S/A, S/B"},
		{name: "older template", resources: older, args: []string{"--stack", "S"}, want: "stack S: template from an older version of kinesis-dynamo-pipeline: synthesize again with this version"},
		{name: "newer marker", resources: newer, args: []string{"--stack", "S"}, want: "kdp:pipeline version 2"},
		{name: "unknown pipeline", resources: one, args: []string{"--stack", "S", "--pipeline", "S/Nope"}, want: "no pipeline S/Nope in stack S"},
		{name: "imported table", resources: imported, args: []string{"--stack", "S"}, want: "an Fn::ImportValue"},
		{name: "bundling skipped", resources: one, args: []string{"--stack", "S"}, want: "no bootstrap: bundling was skipped"},
		{name: "missing stack flag", resources: one, args: nil, want: "--stack is required"},
		{name: "bad record line", resources: one, args: []string{"--stack", "S", "--records", "-"}, records: "not json\n", want: "records line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			paths := map[string]string{}
			for id := range tt.resources {
				if strings.HasSuffix(id, "Mapping") {
					paths[id] = strings.TrimSuffix(id, "Mapping") + "/EventSourceMapping"
				}
			}
			dir := writeAssembly(t, "S", tt.resources, paths, false)
			if tt.name == "bad record line" { // get past the bootstrap check with a Go binary of this module
				asset := filepath.Join(dir, "asset.Ahash")
				if out, err := exec.Command("go", "build", "-o", filepath.Join(asset, "bootstrap"), "../../runtime/cmd/processor").CombinedOutput(); err != nil {
					t.Fatalf("build: %v\n%s", err, out)
				}
			}
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), append([]string{"--cdk-out", dir}, tt.args...), strings.NewReader(tt.records), &stdout, &stderr)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d; stderr: %s", code, ExitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q does not say %q", stderr.String(), tt.want)
			}
			if tt.args != nil && strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
				t.Errorf("want a one-line error, got %q", stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout: %q", stdout.String())
			}
		})
	}
}

// TestPipelineFromTemplate: the pipeline's resources and settings come from the template, the right one of several,
// in a nested assembly too.
func TestPipelineFromTemplate(t *testing.T) {
	tests := []struct {
		name     string
		pipeline string
		nested   bool
		noPaths  bool
		wantID   string
	}{
		{name: "chosen by path", pipeline: "S/B", wantID: "B"},
		{name: "chosen by path without the stack", pipeline: "A", wantID: "A"},
		{name: "in a stage", pipeline: "/S/B", nested: true, wantID: "B"},
		{name: "by the marker, without path metadata", pipeline: "B", noPaths: true, wantID: "B"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			paths := map[string]string{"AMapping": "A/EventSourceMapping", "BMapping": "B/EventSourceMapping"}
			if tt.noPaths {
				paths = nil
			}
			dir := writeAssembly(t, "S", merge(fixtureResources("A"), fixtureResources("B")), paths, tt.nested)
			st, err := loadStack(dir, "S")
			if err != nil {
				t.Fatal(err)
			}
			ps, err := st.pipelines()
			if err != nil {
				t.Fatal(err)
			}
			p, err := choose("S", ps, tt.pipeline)
			if err != nil {
				t.Fatal(err)
			}
			id := tt.wantID
			if p.streamID != id+"Stream" || p.shards != 2 || p.table.logicalID != id+"Table" || p.errorTable == nil ||
				p.errorTable.logicalID != id+"Errors" || p.onFailureID != id+"Queue" || p.onFailureTyp != "AWS::SQS::Queue" {
				t.Errorf("pipeline %+v", p)
			}
			if want := []keyAttr{{"pk", "N", "HASH"}}; len(p.table.keys) != 1 || p.table.keys[0] != want[0] || p.table.ttl != "expiresAt" {
				t.Errorf("table %+v", p.table)
			}
			if p.assetDir != filepath.Join(st.dir, "asset."+id+"hash") {
				t.Errorf("asset dir %s", p.assetDir)
			}
			var lo localrun.Options
			configureMapping(&lo, p, func(string, ...any) {})
			want := localrun.Options{BatchSize: 7, MaximumBatchingWindow: 2 * time.Second, StartingPosition: localrun.TrimHorizon,
				MaximumRetryAttempts: 3, MaximumRecordAge: 2 * time.Minute, BisectBatchOnFunctionError: true,
				ReportBatchItemFailures: true, FilterPatterns: []string{`{"data":{"a":[1]}}`}, FunctionTimeout: 30 * time.Second}
			if !reflect.DeepEqual(lo, want) {
				t.Errorf("mapping options\n got %+v\nwant %+v", lo, want)
			}
			var warned []string
			env, _ := functionEnv(p, func(f string, a ...any) { warned = append(warned, fmt.Sprintf(f, a...)) })
			wantEnv := map[string]string{"PIPELINE_TABLE_NAME": id + "Table", "PIPELINE_ERROR_TABLE_NAME": id + "Errors",
				"REGION": "us-east-1", "LITERAL": "x"}
			if !reflect.DeepEqual(env, wantEnv) {
				t.Errorf("env %v, want %v", env, wantEnv)
			}
			if len(warned) != 1 || !strings.Contains(warned[0], "QUEUE_ARN") {
				t.Errorf("warnings %q, want one naming QUEUE_ARN", warned)
			}
		})
	}
}

func TestReadRecords(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		wantPK  []string
		want    []string
		wantErr string
	}{
		{name: "json and base64", give: "{\"data\": {\"a\": 1}, \"partitionKey\": \"k\"}\n\n{\"dataBase64\": \"/w==\"}\n{\"data\": \"s\"}\n",
			wantPK: []string{"k", "record-3", "record-4"}, want: []string{`{"a": 1}`, "\xff", `"s"`}},
		{name: "both", give: `{"data": 1, "dataBase64": "AA=="}`, wantErr: "not both"},
		{name: "neither", give: `{"partitionKey": "k"}`, wantErr: "no data"},
		{name: "bad base64", give: `{"dataBase64": "!!"}`, wantErr: "dataBase64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readRecords(strings.NewReader(tt.give))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d records", len(got))
			}
			for i := range got {
				if string(got[i].Data) != tt.want[i] || *got[i].PartitionKey != tt.wantPK[i] {
					t.Errorf("record %d: %q %q", i, got[i].Data, *got[i].PartitionKey)
				}
			}
		})
	}
}

func TestAttributeValueJSON(t *testing.T) {
	item := map[string]types.AttributeValue{
		"s": &types.AttributeValueMemberS{Value: "x"}, "n": &types.AttributeValueMemberN{Value: "1.5"},
		"b": &types.AttributeValueMemberB{Value: []byte{0xff}}, "t": &types.AttributeValueMemberBOOL{Value: true},
		"z": &types.AttributeValueMemberNULL{Value: true}, "ss": &types.AttributeValueMemberSS{Value: []string{"a"}},
		"l": &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberN{Value: "2"}}},
		"m": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"k": &types.AttributeValueMemberS{Value: "v"}}},
	}
	got, err := json.Marshal(itemJSON(item))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"b":{"B":"/w=="},"l":{"L":[{"N":"2"}]},"m":{"M":{"k":{"S":"v"}}},"n":{"N":"1.5"},"s":{"S":"x"},"ss":{"SS":["a"]},"t":{"BOOL":true},"z":{"NULL":true}}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestCommandModulesAreTheConstructs keeps `go run .../runtime/cmd/kdp` working in a tidy CDK app: every module
// the command builds from must be one the construct's import graph already brings (else "missing go.sum entry").
func TestCommandModulesAreTheConstructs(t *testing.T) {
	modules := func(pkg string) []string {
		t.Helper()
		out, err := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		set := map[string]bool{}
		for _, m := range strings.Fields(string(out)) {
			set[m] = true
		}
		var list []string
		for m := range set {
			list = append(list, m)
		}
		sort.Strings(list)
		return list
	}
	construct := map[string]bool{}
	for _, m := range modules("../../kinesispipeline") {
		construct[m] = true
	}
	for _, m := range modules("../../runtime/cmd/kdp") {
		if !construct[m] {
			t.Errorf("kdp builds from module %s, which the construct's import graph lacks", m)
		}
	}
}
