package kinesispipeline_test

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
)

// actionsByResource returns the actions of the default policy of the role whose logical ID starts with prefix, by
// each resource they apply to (a statement on several resources counts for each), sorted.
func actionsByResource(t *testing.T, tmpl map[string]interface{}, prefix string) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	for id, r := range testutil.Resources(tmpl, typePolicy) {
		if !strings.HasPrefix(id, prefix) {
			continue
		}
		for _, s := range testutil.Get(r, "Properties", "PolicyDocument", "Statement").([]interface{}) {
			resources, ok := testutil.Get(s, "Resource").([]interface{})
			if !ok {
				resources = []interface{}{testutil.Get(s, "Resource")}
			}
			var actions []string
			switch a := testutil.Get(s, "Action").(type) {
			case string:
				actions = []string{a}
			case []interface{}:
				for _, x := range a {
					actions = append(actions, x.(string))
				}
			}
			for _, res := range resources {
				b, _ := json.Marshal(res)
				got[string(b)] = append(got[string(b)], actions...)
			}
		}
	}
	for _, actions := range got {
		sort.Strings(actions)
	}
	return got
}

// TestGrantRecountAggregates: with Aggregates, GrantRedrive and GrantReplay let the operator read and write the
// aggregate table's items (the commands recount the records they store there), and use its customer-managed key;
// nothing else on it (no scan, no delete).
func TestGrantRecountAggregates(t *testing.T) {
	grants := map[string]func(p *kinesispipeline.KinesisDynamoPipeline, g awsiam.IGrantable){
		"redrive": func(p *kinesispipeline.KinesisDynamoPipeline, g awsiam.IGrantable) { p.GrantRedrive(g) },
		"replay":  func(p *kinesispipeline.KinesisDynamoPipeline, g awsiam.IGrantable) { p.GrantReplay(g) },
	}
	for name, grant := range grants {
		for _, existing := range []bool{false, true} {
			t.Run(name+map[bool]string{false: " created table", true: " existing table with its own key"}[existing], func(t *testing.T) {
				stack := testutil.NewStack()
				operator := awsiam.NewRole(stack, jsii.String("Operator"), &awsiam.RoleProps{AssumedBy: awsiam.NewAccountRootPrincipal()})
				testutil.Must(t, func() {
					props := &kinesispipeline.KinesisDynamoPipelineProps{Aggregates: &[]*kinesispipeline.AggregateProps{perCategory()}}
					if existing {
						key := awskms.NewKey(stack, jsii.String("AggregateKey"), nil)
						props.AggregateTable = awsdynamodb.NewTableV2(stack, jsii.String("Aggregates"), &awsdynamodb.TablePropsV2{
							PartitionKey: &awsdynamodb.Attribute{Name: jsii.String("pk"), Type: awsdynamodb.AttributeType_STRING},
							SortKey:      &awsdynamodb.Attribute{Name: jsii.String("sk"), Type: awsdynamodb.AttributeType_STRING},
							Encryption:   awsdynamodb.TableEncryptionV2_CustomerManagedKey(key, nil),
						})
					}
					grant(kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), props), operator)
				})
				tmpl := testutil.Template(t, stack)
				prefix := "PipelineAggregateTable"
				if existing {
					prefix = "Aggregates"
				}
				aggID, _ := tableID(t, tmpl, prefix)
				ref := func(id string) string {
					b, _ := json.Marshal(map[string]interface{}{"Fn::GetAtt": []string{id, "Arn"}})
					return string(b)
				}
				got := actionsByResource(t, tmpl, "OperatorDefaultPolicy")
				assertEqual(t, "aggregate table actions", got[ref(aggID)], []string{"dynamodb:GetItem", "dynamodb:PutItem"})
				for res, actions := range got {
					if res != ref(aggID) && strings.Contains(res, aggID) {
						t.Errorf("more on the aggregate table: %s %v", res, actions)
					}
				}
				if existing {
					var keyID string
					for id := range testutil.Resources(tmpl, "AWS::KMS::Key") {
						if strings.HasPrefix(id, "AggregateKey") {
							keyID = id
						}
					}
					actions := got[ref(keyID)]
					for _, a := range []string{"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"} {
						if !contains(actions, a) {
							t.Errorf("aggregate key actions %v lack %s", actions, a)
						}
					}
				}
			})
		}
	}
}

// TestRecountCommandsNameTheAggregateTable: with Aggregates, every redrive command and the replay command the
// outputs print pass the aggregate table (--aggregate-table), so the records they store are recounted.
func TestRecountCommandsNameTheAggregateTable(t *testing.T) {
	for _, bucket := range []bool{false, true} {
		_, _, tmpl := synth(t, &kinesispipeline.KinesisDynamoPipelineProps{
			Aggregates: &[]*kinesispipeline.AggregateProps{perCategory()}, FailureBucketEnabled: jsii.Bool(bucket)})
		aggID, _ := tableID(t, tmpl, "PipelineAggregateTable")
		flag := " --aggregate-table {Ref " + aggID + "}"
		want := map[string]string{"RedriveErrorTableCommand": flag, "ReplayCommand": flag + " --since"}
		if bucket {
			want["RedriveFailureBucketCommand"] = flag
		} else {
			want["RedriveDeadLetterQueueCommand"] = flag
		}
		for output, suffix := range want {
			found := false
			for key, o := range tmpl["Outputs"].(map[string]interface{}) {
				if !strings.HasPrefix(key, "Pipeline"+output) {
					continue
				}
				found = true
				if got := outputValue(t, testutil.Get(o, "Value")); !strings.HasSuffix(got, suffix) || strings.Count(got, "--aggregate-table") != 1 {
					t.Errorf("%s = %s, want it to end in %q", output, got, suffix)
				}
			}
			if !found {
				t.Errorf("no output %s", output)
			}
		}
	}
}
