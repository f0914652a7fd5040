package kinesispipeline_test

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

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
		want := map[string][]string{
			arn(typeStream):                {"kinesis:GetRecords", "kinesis:GetShardIterator"},
			tableArn("PipelineTable"):      {"dynamodb:BatchWriteItem", "dynamodb:PutItem"},
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
		assertEqual(t, "operator policy", policyActions(t, tmpl, "OperatorDefaultPolicy"), want)
	}
}

func TestOutputs(t *testing.T) {
	tests := []struct {
		name  string
		props *kinesispipeline.KinesisDynamoPipelineProps
		want  []string
	}{
		{"default", nil, []string{"DeadLetterQueueUrl", "ErrorTableName", "RedriveDeadLetterQueueCommand", "RedriveErrorTableCommand", "StreamName", "TableName"}},
		{"bucket", &kinesispipeline.KinesisDynamoPipelineProps{FailureBucketEnabled: jsii.Bool(true)},
			[]string{"ErrorTableName", "FailureBucketName", "RedriveErrorTableCommand", "RedriveFailureBucketCommand", "StreamName", "TableName"}},
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
	_, _, tmpl := synth(t, nil)
	for id, o := range tmpl["Outputs"].(map[string]interface{}) {
		if strings.HasPrefix(id, "PipelineRedriveDeadLetterQueueCommand") {
			value, _ := json.Marshal(testutil.Get(o, "Value"))
			for _, want := range []string{"go run github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/cmd/redrive@", " dlq --queue-url ", " --table ", " --error-table "} {
				if !strings.Contains(string(value), want) {
					t.Errorf("redrive command lacks %q: %s", want, value)
				}
			}
		}
	}
}
