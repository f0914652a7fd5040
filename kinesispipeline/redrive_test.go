package kinesispipeline_test

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
)

// policyActions returns the actions of the default policy of the role whose logical ID starts with prefix, by
// the resource they apply to.
func policyActions(t *testing.T, tmpl map[string]interface{}, prefix string) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	for id, r := range testutil.Resources(tmpl, typePolicy) {
		if !strings.HasPrefix(id, prefix) {
			continue
		}
		for _, s := range testutil.Get(r, "Properties", "PolicyDocument", "Statement").([]interface{}) {
			res, _ := json.Marshal(testutil.Get(s, "Resource"))
			switch a := testutil.Get(s, "Action").(type) {
			case string:
				got[string(res)] = append(got[string(res)], a)
			case []interface{}:
				for _, x := range a {
					got[string(res)] = append(got[string(res)], x.(string))
				}
			}
		}
	}
	for _, actions := range got {
		sort.Strings(actions)
	}
	return got
}

func TestGrantRedrive(t *testing.T) {
	for _, bucket := range []bool{false, true} {
		stack := testutil.NewStack()
		operator := awsiam.NewRole(stack, jsii.String("Operator"), &awsiam.RoleProps{AssumedBy: awsiam.NewAccountRootPrincipal()})
		testutil.Must(t, func() {
			p := kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
				FailureBucketEnabled: jsii.Bool(bucket),
			})
			p.GrantRedrive(operator)
		})
		tmpl := testutil.Template(t, stack)
		arn := func(typ string) string {
			id, _ := testutil.OneResource(t, tmpl, typ)
			b, _ := json.Marshal(map[string]interface{}{"Fn::GetAtt": []string{id, "Arn"}})
			return string(b)
		}
		tableArn := func(prefix string) string {
			id, _ := tableID(t, tmpl, prefix)
			b, _ := json.Marshal(map[string]interface{}{"Fn::GetAtt": []string{id, "Arn"}})
			return string(b)
		}
		_, fn := testutil.OneResource(t, tmpl, typeFunction)
		assetKey, _ := testutil.Get(fn, "Properties", "Code", "S3Key").(string)
		if !strings.HasSuffix(assetKey, ".zip") {
			t.Fatalf("function code key %v", testutil.Get(fn, "Properties", "Code"))
		}
		got := policyActions(t, tmpl, "OperatorDefaultPolicy")
		// The code asset's object ARN: its partition is literal or {"Ref": "AWS::Partition"} depending on feature flags.
		assetObject := ""
		for res := range got {
			if strings.Contains(res, ":s3:::cdk-hnb659fds-assets-123456789012-eu-west-1/"+assetKey+`"`) {
				assetObject = res
			}
		}
		want := map[string][]string{
			arn(typeStream):                {"kinesis:GetRecords", "kinesis:GetShardIterator"},
			tableArn("PipelineTable"):      {"dynamodb:BatchWriteItem", "dynamodb:GetItem", "dynamodb:PutItem"},
			assetObject:                    {"s3:GetObject"},
			tableArn("PipelineErrorTable"): {"dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan"},
		}
		if bucket {
			bucketID, _ := testutil.OneResource(t, tmpl, typeBucket)
			b, _ := json.Marshal(map[string]interface{}{"Fn::GetAtt": []string{bucketID, "Arn"}})
			want[string(b)] = []string{"s3:ListBucket"}
			o, _ := json.Marshal(map[string]interface{}{"Fn::Join": []interface{}{"", []interface{}{map[string]interface{}{"Fn::GetAtt": []string{bucketID, "Arn"}}, "/*"}}})
			want[string(o)] = []string{"s3:DeleteObject", "s3:GetObject"}
		} else {
			want[arn(typeQueue)] = []string{"sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:ReceiveMessage"}
		}
		assertEqual(t, "operator policy", got, want)
	}
}

// outputValue renders an output's value: literal parts as they are, references as {Ref X} and {X.Arn}.
func outputValue(t *testing.T, v interface{}) string {
	t.Helper()
	switch v := v.(type) {
	case string:
		return v
	case map[string]interface{}:
		if ref, ok := v["Ref"].(string); ok {
			return "{Ref " + ref + "}"
		}
		if att, ok := v["Fn::GetAtt"].([]interface{}); ok && len(att) == 2 {
			return "{" + att[0].(string) + "." + att[1].(string) + "}"
		}
		if join, ok := v["Fn::Join"].([]interface{}); ok && len(join) == 2 && join[0] == "" {
			var b strings.Builder
			for _, part := range join[1].([]interface{}) {
				b.WriteString(outputValue(t, part))
			}
			return b.String()
		}
	}
	t.Fatalf("output value %v", v)
	return ""
}

func TestOutputs(t *testing.T) {
	tests := []struct {
		name  string
		props *kinesispipeline.KinesisDynamoPipelineProps
		want  []string
	}{
		{"default", nil, []string{"DeadLetterQueueUrl", "ErrorTableName", "RedriveDeadLetterQueueCommand", "RedriveErrorTableCommand", "ReplayCommand", "StreamName", "TableName"}},
		{"bucket", &kinesispipeline.KinesisDynamoPipelineProps{FailureBucketEnabled: jsii.Bool(true)},
			[]string{"ErrorTableName", "FailureBucketName", "RedriveErrorTableCommand", "RedriveFailureBucketCommand", "ReplayCommand", "StreamName", "TableName"}},
		{"OutputsEnabled false", &kinesispipeline.KinesisDynamoPipelineProps{OutputsEnabled: jsii.Bool(false)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, tmpl := synth(t, tt.props)
			outputs, _ := tmpl["Outputs"].(map[string]interface{})
			var got []string
			for id := range outputs {
				got = append(got, strings.TrimPrefix(id, "Pipeline")[:len(strings.TrimPrefix(id, "Pipeline"))-8])
			}
			sort.Strings(got)
			assertEqual(t, "outputs", got, tt.want)
		})
	}
}

// TestRedriveCommands: each output command pins the pipeline's stream, names its tables, reads the configuration
// from the function's own code asset, and, for a bucket, reads only this mapping's objects. Built inside this
// module (a development build), the command runs the package by import path, without a version no proxy serves.
func TestRedriveCommands(t *testing.T) {
	_, _, tmpl := synth(t, &kinesispipeline.KinesisDynamoPipelineProps{FailureBucketEnabled: jsii.Bool(true)})
	_, _, dlqTmpl := synth(t, nil)
	id := func(tmpl map[string]interface{}, typ string) string {
		id, _ := testutil.OneResource(t, tmpl, typ)
		return id
	}
	_, fn := testutil.OneResource(t, tmpl, typeFunction)
	asset := "s3://" + testutil.Get(fn, "Properties", "Code", "S3Bucket").(string) + "/" + testutil.Get(fn, "Properties", "Code", "S3Key").(string)
	_, dlqFn := testutil.OneResource(t, dlqTmpl, typeFunction)
	dlqAsset := "s3://" + testutil.Get(dlqFn, "Properties", "Code", "S3Bucket").(string) + "/" + testutil.Get(dlqFn, "Properties", "Code", "S3Key").(string)
	tables := func(tmpl map[string]interface{}) string {
		data, _ := tableID(t, tmpl, "PipelineTable")
		errs, _ := tableID(t, tmpl, "PipelineErrorTable")
		return " --table {Ref " + data + "} --error-table {Ref " + errs + "}"
	}
	const run = "go run github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/cmd/redrive "
	tests := []struct {
		tmpl   map[string]interface{}
		output string
		want   string
	}{
		{dlqTmpl, "RedriveDeadLetterQueueCommand", run + "dlq --queue-url {Ref " + id(dlqTmpl, typeQueue) + "} --stream {" + id(dlqTmpl, typeStream) + ".Arn}" + tables(dlqTmpl) + " --config " + dlqAsset},
		{dlqTmpl, "RedriveErrorTableCommand", run + "errors --stream {" + id(dlqTmpl, typeStream) + ".Arn}" + tables(dlqTmpl) + " --config " + dlqAsset},
		{tmpl, "RedriveFailureBucketCommand", run + "s3 --bucket {Ref " + id(tmpl, typeBucket) + "} --prefix aws/lambda/{Ref " + id(tmpl, "AWS::Lambda::EventSourceMapping") + "}/ --stream {" + id(tmpl, typeStream) + ".Arn}" + tables(tmpl) + " --config " + asset},
	}
	for _, tt := range tests {
		t.Run(tt.output, func(t *testing.T) {
			for key, o := range tt.tmpl["Outputs"].(map[string]interface{}) {
				if !strings.HasPrefix(key, "Pipeline"+tt.output) {
					continue
				}
				if got := outputValue(t, testutil.Get(o, "Value")); got != tt.want {
					t.Errorf("command\n got %s\nwant %s", got, tt.want)
				}
				if d := testutil.Get(o, "Description").(string); !strings.Contains(d, "run it in the CDK app's module directory") {
					t.Errorf("description %q does not say where to run a command without a version", d)
				}
				return
			}
			t.Errorf("no output %s", tt.output)
		})
	}
}

// TestRedriveCommandsOmittedForOwnProcessor: the redrive command runs the default transform, so a pipeline with a
// ProcessorEntry gets no redrive command outputs (they would write other items than its function does), only the
// resources' names, and an info annotation says why.
func TestRedriveCommandsOmittedForOwnProcessor(t *testing.T) {
	stack, _, tmpl := synth(t, &kinesispipeline.KinesisDynamoPipelineProps{
		ProcessorEntry: jsii.String("github.com/cdk-constructs-go/kinesis-dynamo-pipeline/examples/custom-processor/processor"),
	})
	var names []string
	for key := range tmpl["Outputs"].(map[string]interface{}) {
		names = append(names, key)
		if strings.Contains(key, "Redrive") {
			t.Errorf("output %s: a redrive command for a pipeline with its own processor", key)
		}
	}
	for _, want := range []string{"PipelineStreamName", "PipelineTableName", "PipelineErrorTableName", "PipelineDeadLetterQueueUrl"} {
		found := false
		for _, n := range names {
			found = found || strings.HasPrefix(n, want)
		}
		if !found {
			t.Errorf("no output %s in %v", want, names)
		}
	}
	infos := assertions.Annotations_FromStack(stack).FindInfo(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("no redrive command outputs")))
	if len(*infos) != 1 {
		t.Errorf("info annotations about the missing redrive commands: %d, want 1", len(*infos))
	}
}
