package kinesispipeline_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
)

func perCategory() *kinesispipeline.AggregateProps {
	return &kinesispipeline.AggregateProps{
		Name:    jsii.String("perCategory"),
		GroupBy: jsii.Strings("Category"),
		Window:  awscdk.Duration_Minutes(jsii.Number(1)),
		Measures: &[]*kinesispipeline.AggregateMeasure{
			{Name: jsii.String("readings"), Kind: kinesispipeline.AggregateMeasureKind_COUNT},
			{Name: jsii.String("total"), Kind: kinesispipeline.AggregateMeasureKind_SUM, Path: jsii.String("Value")},
			{Name: jsii.String("highest"), Kind: kinesispipeline.AggregateMeasureKind_MAX, Path: jsii.String("Value")},
		},
	}
}

// aggPolicyActions returns the function role's actions per resource reference (JSON of the Resource entry).
func aggPolicyActions(t *testing.T, tmpl map[string]interface{}) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, s := range testutil.Get(testutil.Properties(t, tmpl, typePolicy), "PolicyDocument", "Statement").([]interface{}) {
		var resources []interface{}
		switch r := testutil.Get(s, "Resource").(type) {
		case []interface{}:
			resources = r
		default:
			resources = []interface{}{r}
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
		for _, r := range resources {
			b, _ := json.Marshal(r)
			out[string(b)] = append(out[string(b)], actions...)
		}
	}
	return out
}

func TestAggregatesTemplate(t *testing.T) {
	stack, p, tmpl := synth(t, &kinesispipeline.KinesisDynamoPipelineProps{
		Aggregates:       &[]*kinesispipeline.AggregateProps{perCategory()},
		RemovalPolicy:    awscdk.RemovalPolicy_DESTROY,
		DashboardEnabled: jsii.Bool(true),
	})
	if w := testutil.Warnings(t, stack); len(w) != 1 || !strings.Contains(w[0], "Aggregates with finite retries") {
		t.Errorf("warnings %q, want the one about finite retries", w)
	}
	// The configuration carries the aggregate as the processor reads it.
	assertEqual(t, "config", configJSON(t, p), `{"partitionKey":{"name":"id","type":"S","source":"$eventId"},"metadata":["_kinesisArrivalTime"],`+
		`"aggregates":[{"name":"perCategory","groupBy":[{"path":"Category"}],"windowSeconds":60,"measures":[{"name":"readings","kind":"count"},`+
		`{"name":"total","kind":"sum","path":"Value"},{"name":"highest","kind":"max","path":"Value"}]}]}`)

	// The aggregate table: pk/sk strings, encrypted, PITR, on-demand, the removal policy given.
	id, table := tableID(t, tmpl, "PipelineAggregateTable")
	assertEqual(t, "key schema", testutil.Get(table, "Properties", "KeySchema"), []interface{}{
		map[string]interface{}{"AttributeName": "pk", "KeyType": "HASH"}, map[string]interface{}{"AttributeName": "sk", "KeyType": "RANGE"}})
	assertEqual(t, "billing", testutil.Get(table, "Properties", "BillingMode"), "PAY_PER_REQUEST")
	assertEqual(t, "SSE", testutil.Get(table, "Properties", "SSESpecification", "SSEEnabled"), true)
	replica := testutil.Get(table, "Properties", "Replicas").([]interface{})[0]
	assertEqual(t, "PITR", testutil.Get(replica, "PointInTimeRecoverySpecification", "PointInTimeRecoveryEnabled"), true)
	assertEqual(t, "deletion policy", table["DeletionPolicy"], "Delete")
	if p.AggregateTable() == nil {
		t.Error("AggregateTable() is nil")
	}

	// The function knows the table and may only read and conditionally write its items.
	env := testutil.Get(testutil.Properties(t, tmpl, "AWS::Lambda::Function"), "Environment", "Variables").(map[string]interface{})
	ref, _ := json.Marshal(env["PIPELINE_AGGREGATE_TABLE_NAME"])
	if !strings.Contains(string(ref), id) {
		t.Errorf("PIPELINE_AGGREGATE_TABLE_NAME = %s, want a reference to %s", ref, id)
	}
	var aggActions []string
	for res, actions := range aggPolicyActions(t, tmpl) {
		if strings.Contains(res, id) {
			aggActions = append(aggActions, actions...)
		}
	}
	assertEqual(t, "aggregate table actions", aggActions, []string{"dynamodb:GetItem", "dynamodb:PutItem"})

	// The dashboard shows the aggregate metrics.
	_, dash := testutil.OneResource(t, tmpl, "AWS::CloudWatch::Dashboard")
	body, _ := json.Marshal(testutil.Get(dash, "Properties", "DashboardBody"))
	for _, m := range []string{"AggregateWrites", "AggregateConflicts", "AggregateFailures"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("dashboard lacks %s", m)
		}
	}
}

func TestAggregatesUnlimitedRetriesNoWarning(t *testing.T) {
	stack, _, _ := synth(t, &kinesispipeline.KinesisDynamoPipelineProps{
		Aggregates: &[]*kinesispipeline.AggregateProps{perCategory()}, UnlimitedRetries: jsii.Bool(true)})
	for _, w := range testutil.Warnings(t, stack) {
		if strings.Contains(w, "Aggregates") {
			t.Errorf("warning with UnlimitedRetries: %s", w)
		}
	}
}

func TestAggregatesOffByDefault(t *testing.T) {
	_, p, tmpl := synth(t, nil)
	for id := range testutil.Resources(tmpl, typeTable) {
		if strings.Contains(id, "Aggregate") {
			t.Errorf("aggregate table %s without Aggregates", id)
		}
	}
	env := testutil.Get(testutil.Properties(t, tmpl, "AWS::Lambda::Function"), "Environment", "Variables").(map[string]interface{})
	if _, ok := env["PIPELINE_AGGREGATE_TABLE_NAME"]; ok {
		t.Error("PIPELINE_AGGREGATE_TABLE_NAME set without Aggregates")
	}
	if p.AggregateTable() != nil {
		t.Error("AggregateTable() is not nil without Aggregates")
	}
}

func TestAggregatesExistingTable(t *testing.T) {
	stack := testutil.NewStack()
	existing := awsdynamodb.TableV2_FromTableName(stack, jsii.String("A"), jsii.String("existing-aggregates"))
	testutil.Must(t, func() {
		kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
			Aggregates: &[]*kinesispipeline.AggregateProps{perCategory()}, AggregateTable: existing})
	})
	tmpl := testutil.Template(t, stack)
	if n := len(testutil.Resources(tmpl, typeTable)); n != 2 {
		t.Errorf("%d tables, want 2 (data and error; the aggregate table exists)", n)
	}
	env, _ := json.Marshal(testutil.Get(testutil.Properties(t, tmpl, "AWS::Lambda::Function"), "Environment", "Variables", "PIPELINE_AGGREGATE_TABLE_NAME"))
	if string(env) != `"existing-aggregates"` {
		t.Errorf("PIPELINE_AGGREGATE_TABLE_NAME = %s", env)
	}
	found := false
	for res, actions := range aggPolicyActions(t, tmpl) {
		if strings.Contains(res, "existing-aggregates") {
			found = true
			assertEqual(t, "actions", actions, []string{"dynamodb:GetItem", "dynamodb:PutItem"})
		}
	}
	if !found {
		t.Error("no grant on the existing aggregate table")
	}
}

func TestAggregatesValidation(t *testing.T) {
	tests := []struct {
		name  string
		props func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps
		want  []string
	}{
		{"parallelization factor", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{Aggregates: &[]*kinesispipeline.AggregateProps{perCategory()},
				ParallelizationFactor: jsii.Number(2)}
		}, []string{"ParallelizationFactor: must be 1 with Aggregates"}},
		{"window not dividing a day", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			a := perCategory()
			a.Window = awscdk.Duration_Seconds(jsii.Number(7))
			return &kinesispipeline.KinesisDynamoPipelineProps{Aggregates: &[]*kinesispipeline.AggregateProps{a}}
		}, []string{"Aggregates[0] (perCategory): windowSeconds 7 must be between 1 and 86400 and divide a day"}},
		{"no window", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			a := perCategory()
			a.Window = nil
			return &kinesispipeline.KinesisDynamoPipelineProps{Aggregates: &[]*kinesispipeline.AggregateProps{a}}
		}, []string{"Aggregates[0] (perCategory): Window is required"}},
		{"duplicate names and a bad expression, each reported", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			b := perCategory()
			b.GroupByExpressions = jsii.Strings("uper(Category)")
			return &kinesispipeline.KinesisDynamoPipelineProps{Aggregates: &[]*kinesispipeline.AggregateProps{perCategory(), b}}
		}, []string{`Aggregates[1] (perCategory): name "perCategory" is also aggregates[0]'s`,
			`Aggregates[1] (perCategory): groupBy[1]: expression "uper(Category)": unknown function uper`}},
		{"count with a path", func(awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			a := perCategory()
			(*a.Measures)[0].Path = jsii.String("Value")
			return &kinesispipeline.KinesisDynamoPipelineProps{Aggregates: &[]*kinesispipeline.AggregateProps{a}}
		}, []string{"measures[0] (readings): a count takes no path or expression"}},
		{"aggregate table without aggregates", func(s awscdk.Stack) *kinesispipeline.KinesisDynamoPipelineProps {
			return &kinesispipeline.KinesisDynamoPipelineProps{AggregateTable: awsdynamodb.TableV2_FromTableName(s, jsii.String("A"), jsii.String("a"))}
		}, []string{"AggregateTable: only allowed with Aggregates"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stack := testutil.NewStack()
			msg := testutil.PanicMessage(t, func() {
				kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), tt.props(stack))
			})
			for _, want := range tt.want {
				if !strings.Contains(msg, want) {
					t.Errorf("panic message must contain %q, got:\n%s", want, msg)
				}
			}
		})
	}
}

// TestAggregatesCustomerKeyAndNag: with the security tests' customer-managed key, the aggregate table is encrypted
// with it and the function may use it; cdk-nag's AwsSolutions pack finds nothing on the pipeline's resources.
func TestAggregatesCustomerKeyAndNag(t *testing.T) {
	app := testutil.NewApp()
	stack := awscdk.NewStack(app, jsii.String("Nag"), &awscdk.StackProps{
		Env: &awscdk.Environment{Account: jsii.String("123456789012"), Region: jsii.String("eu-west-1")},
	})
	testutil.Must(t, func() {
		props := customized(stack)
		props.Aggregates = &[]*kinesispipeline.AggregateProps{perCategory()}
		kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), props)
		awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	})
	testutil.Must(t, func() {
		annotations := assertions.Annotations_FromStack(stack)
		for kind, messages := range map[string]*[]*cxapi.SynthesisMessage{
			"error":   annotations.FindError(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))),
			"warning": annotations.FindWarning(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))),
		} {
			for _, m := range *messages {
				if strings.HasPrefix(*m.Id, "/Nag/Pipeline/") {
					t.Errorf("%s %s: %v", kind, *m.Id, m.Entry.Data)
				}
			}
		}
	})
	tmpl := testutil.Template(t, stack)
	keyID, _ := testutil.OneResource(t, tmpl, "AWS::KMS::Key")
	_, table := tableID(t, tmpl, "PipelineAggregateTable")
	assertEqual(t, "SSE", testutil.Get(table, "Properties", "SSESpecification", "SSEType"), "KMS")
	assertEqual(t, "key", testutil.Get(table, "Properties", "Replicas", "0", "SSESpecification", "KMSMasterKeyId"),
		map[string]interface{}{"Fn::GetAtt": []string{keyID, "Arn"}})
}
