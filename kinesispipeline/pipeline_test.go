package kinesispipeline_test

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/testutil"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/kinesispipeline"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

const (
	typeStream   = "AWS::Kinesis::Stream"
	typeTable    = "AWS::DynamoDB::GlobalTable"
	typeQueue    = "AWS::SQS::Queue"
	typeFunction = "AWS::Lambda::Function"
	typeMapping  = "AWS::Lambda::EventSourceMapping"
	typePolicy   = "AWS::IAM::Policy"
	typeRole     = "AWS::IAM::Role"
	typeLogGroup = "AWS::Logs::LogGroup"
	typeBucket   = "AWS::S3::Bucket"
)

// synth builds a pipeline with props in a fresh stack and returns the stack, the pipeline and the template.
func synth(t *testing.T, props *kinesispipeline.KinesisDynamoPipelineProps) (awscdk.Stack, *kinesispipeline.KinesisDynamoPipeline, map[string]interface{}) {
	t.Helper()
	stack := testutil.NewStack()
	var p *kinesispipeline.KinesisDynamoPipeline
	testutil.Must(t, func() { p = kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), props) })
	return stack, p, testutil.Template(t, stack)
}

func assertEqual(t *testing.T, what string, got, want interface{}) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func TestDefaults(t *testing.T) {
	stack, p, tmpl := synth(t, nil)

	_, stream := testutil.OneResource(t, tmpl, typeStream)
	assertEqual(t, "stream", stream["Properties"], map[string]interface{}{
		"RetentionPeriodHours": 24,
		"ShardCount":           1,
		"StreamEncryption":     map[string]interface{}{"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
		"StreamModeDetails":    map[string]interface{}{"StreamMode": "PROVISIONED"},
	})

	tables := testutil.Resources(tmpl, typeTable)
	if len(tables) != 2 {
		t.Fatalf("want 2 tables (data, error), got %v", testutil.LogicalIDs(tables))
	}
	for id, table := range tables {
		props := table["Properties"]
		assertEqual(t, id+" key", testutil.Get(props, "KeySchema"), []interface{}{map[string]interface{}{"AttributeName": "id", "KeyType": "HASH"}})
		assertEqual(t, id+" billing", testutil.Get(props, "BillingMode"), "PAY_PER_REQUEST")
		assertEqual(t, id+" PITR", testutil.Get(props, "Replicas", "0", "PointInTimeRecoverySpecification", "PointInTimeRecoveryEnabled"), true)
		assertEqual(t, id+" encryption", testutil.Get(props, "SSESpecification"), map[string]interface{}{"SSEEnabled": true, "SSEType": "KMS"})
		assertEqual(t, id+" TTL", testutil.Get(props, "TimeToLiveSpecification"), nil)
	}

	_, queue := testutil.OneResource(t, tmpl, typeQueue)
	assertEqual(t, "queue", queue["Properties"], map[string]interface{}{"MessageRetentionPeriod": 1209600, "SqsManagedSseEnabled": true})
	queuePolicy := testutil.Properties(t, tmpl, "AWS::SQS::QueuePolicy")
	assertEqual(t, "queue policy denies plain HTTP", testutil.Get(queuePolicy, "PolicyDocument", "Statement", "0", "Condition"),
		map[string]interface{}{"Bool": map[string]interface{}{"aws:SecureTransport": "false"}})
	assertEqual(t, "queue policy effect", testutil.Get(queuePolicy, "PolicyDocument", "Statement", "0", "Effect"), "Deny")

	for _, typ := range []string{typeStream, typeTable, typeQueue, typeLogGroup} {
		for id, r := range testutil.Resources(tmpl, typ) {
			assertEqual(t, id+" DeletionPolicy", r["DeletionPolicy"], "Retain")
		}
	}

	fn := testutil.Properties(t, tmpl, typeFunction)
	for key, want := range map[string]interface{}{
		"Runtime":       "provided.al2023",
		"Architectures": []string{"arm64"},
		"Handler":       "bootstrap",
		"MemorySize":    256,
		"Timeout":       60,
	} {
		assertEqual(t, "function "+key, fn[key], want)
	}
	assertEqual(t, "log format", testutil.Get(fn, "LoggingConfig", "LogFormat"), "JSON")
	vars, _ := testutil.Get(fn, "Environment", "Variables").(map[string]interface{})
	if vars[processor.EnvTableName] == nil || vars[processor.EnvErrorTableName] == nil || len(vars) != 2 {
		t.Errorf("environment: want exactly %s and %s, got %v", processor.EnvTableName, processor.EnvErrorTableName, vars)
	}

	assertEqual(t, "log retention", testutil.Properties(t, tmpl, typeLogGroup)["RetentionInDays"], 30)

	mappingID, mapping := testutil.OneResource(t, tmpl, typeMapping)
	props := mapping["Properties"].(map[string]interface{})
	for key, want := range map[string]interface{}{
		"BatchSize":                  100,
		"BisectBatchOnFunctionError": true,
		"FunctionResponseTypes":      []string{"ReportBatchItemFailures"},
		"MaximumRetryAttempts":       10,
		"MaximumRecordAgeInSeconds":  21600,
		"StartingPosition":           "TRIM_HORIZON",
	} {
		assertEqual(t, "mapping "+key, props[key], want)
	}
	queueID, _ := testutil.OneResource(t, tmpl, typeQueue)
	assertEqual(t, "on-failure destination", testutil.Get(props, "DestinationConfig", "OnFailure", "Destination"),
		map[string]interface{}{"Fn::GetAtt": []string{queueID, "Arn"}})
	policyID, _ := testutil.OneResource(t, tmpl, typePolicy)
	deps, _ := mapping["DependsOn"].([]interface{})
	if !containsValue(deps, policyID) {
		t.Errorf("%s must depend on the role's default policy %s (the first poll needs the permissions), DependsOn=%v", mappingID, policyID, deps)
	}

	role := testutil.Properties(t, tmpl, typeRole)
	if role["ManagedPolicyArns"] != nil {
		t.Errorf("role must not carry managed policies, got %v", role["ManagedPolicyArns"])
	}

	if w := testutil.Warnings(t, stack); len(w) != 0 {
		t.Errorf("the default stack must synthesize without warnings, got %q", w)
	}

	accessors := map[string]interface{}{
		"Stream": p.Stream(), "Table": p.Table(), "ErrorTable": p.ErrorTable(), "DeadLetterQueue": p.DeadLetterQueue(),
		"Function": p.Function(), "Role": p.Role(), "LogGroup": p.LogGroup(), "EventSourceMapping": p.EventSourceMapping(),
	}
	for name, v := range accessors {
		if v == nil || reflect.ValueOf(v).IsNil() {
			t.Errorf("%s() is nil", name)
		}
	}
	if p.FailureBucket() != nil || p.StreamConsumer() != nil {
		t.Error("FailureBucket() and StreamConsumer() must be nil by default")
	}
}

func containsValue(list []interface{}, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// TestRolePolicyIsExact pins every permission of the processor's role: the processor's two DynamoDB calls, its logs,
// reading the stream and sending to the on-failure queue. Nothing else, no wildcard resources.
func TestRolePolicyIsExact(t *testing.T) {
	_, _, tmpl := synth(t, nil)
	ids := map[string]string{}
	for _, typ := range []string{typeStream, typeQueue, typeLogGroup} {
		id, _ := testutil.OneResource(t, tmpl, typ)
		ids[typ] = id
	}
	var tableIDs []string
	for id := range testutil.Resources(tmpl, typeTable) {
		tableIDs = append(tableIDs, id)
	}
	statements := testutil.Get(testutil.Properties(t, tmpl, typePolicy), "PolicyDocument", "Statement").([]interface{})
	// Resource -> actions, whatever the grouping: with the feature flag @aws-cdk/aws-iam:minimizePolicies, CDK merges
	// statements that share their actions into one statement listing several resources.
	got := map[string][]string{}
	for _, s := range statements {
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
			res, _ := json.Marshal(r)
			if strings.Contains(string(res), `"*"`) {
				t.Errorf("statement with a wildcard resource: %s", res)
			}
			got[string(res)] = append(got[string(res)], actions...)
			sort.Strings(got[string(res)])
		}
	}
	arn := func(id string) string {
		b, _ := json.Marshal(map[string]interface{}{"Fn::GetAtt": []string{id, "Arn"}})
		return string(b)
	}
	want := map[string][]string{
		arn(ids[typeLogGroup]): {"logs:CreateLogStream", "logs:PutLogEvents"},
		arn(ids[typeQueue]):    {"sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"},
		arn(ids[typeStream]): {"kinesis:DescribeStream", "kinesis:DescribeStreamConsumer", "kinesis:DescribeStreamSummary",
			"kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards", "kinesis:ListStreams", "kinesis:SubscribeToShard"},
	}
	for _, id := range tableIDs {
		want[arn(id)] = []string{"dynamodb:BatchWriteItem", "dynamodb:PutItem"}
	}
	assertEqual(t, "role policy", got, want)
}

// TestLogicalIDs pins the logical IDs of the default stack. They are a contract: changing one replaces the resource
// in every user's stack (a new mapping reprocesses the stream or leaves a gap; a new table starts empty).
func TestLogicalIDs(t *testing.T) {
	_, _, tmpl := synth(t, nil)
	var got []string
	for id := range tmpl["Resources"].(map[string]interface{}) {
		got = append(got, id)
	}
	sort.Strings(got)
	want := []string{
		"PipelineDeadLetterQueueF08023D6",
		"PipelineDeadLetterQueuePolicy1883D615",
		"PipelineErrorTableAlarm7FF13162",
		"PipelineErrorTableD326FB67",
		"PipelineEventSourceMapping41E3613F",
		"PipelineFunction478EC3AB",
		"PipelineFunctionErrorsAlarmBBD58449",
		"PipelineFunctionThrottlesAlarm09ECFFEB",
		"PipelineIteratorAgeAlarmA95211E4",
		"PipelineLogGroup9DA7DDE7",
		"PipelineOnFailureDestinationAlarm00D3193B",
		"PipelineReadThroughputExceededAlarmCDA3A0DB",
		"PipelineServiceRole5267AAA3",
		"PipelineServiceRoleDefaultPolicyBEF05A13",
		"PipelineStreamDD609695",
		"PipelineTable0C1A5F45",
	}
	assertEqual(t, "logical IDs", got, want)
}

// TestPipelineMarker: each pipeline's event source mapping, and no other resource, carries the kdp:pipeline
// metadata with its own construct path, so that kdp local finds pipelines without path metadata.
func TestPipelineMarker(t *testing.T) {
	stack := testutil.NewStack()
	testutil.Must(t, func() {
		kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Orders"), nil)
		kinesispipeline.NewKinesisDynamoPipeline(constructs.NewConstruct(stack, jsii.String("Group")), jsii.String("Payments"), nil)
	})
	tmpl := testutil.Template(t, stack)
	got := map[string]interface{}{} // logical ID prefix -> marker
	for id, r := range tmpl["Resources"].(map[string]interface{}) {
		rm := r.(map[string]interface{})
		md, _ := rm["Metadata"].(map[string]interface{})
		m, ok := md["kdp:pipeline"]
		if !ok {
			continue
		}
		if rm["Type"] != typeMapping {
			t.Errorf("%s (%s) carries the marker", id, rm["Type"])
		}
		got[id[:len(id)-8]] = m // without the logical ID's hash
	}
	assertEqual(t, "markers", got, map[string]interface{}{
		"OrdersEventSourceMapping":        map[string]interface{}{"version": 1, "path": "Test/Orders"},
		"GroupPaymentsEventSourceMapping": map[string]interface{}{"version": 1, "path": "Test/Group/Payments"},
	})
}

func TestProps(t *testing.T) {
	tests := []struct {
		name  string
		props kinesispipeline.KinesisDynamoPipelineProps
		check func(t *testing.T, p *kinesispipeline.KinesisDynamoPipeline, tmpl map[string]interface{})
	}{
		{
			name:  "ShardCount and RetentionPeriod",
			props: kinesispipeline.KinesisDynamoPipelineProps{ShardCount: jsii.Number(4), RetentionPeriod: awscdk.Duration_Days(jsii.Number(7))},
			check: func(t *testing.T, p *kinesispipeline.KinesisDynamoPipeline, tmpl map[string]interface{}) {
				s := testutil.Properties(t, tmpl, typeStream)
				assertEqual(t, "shards", s["ShardCount"], 4)
				assertEqual(t, "retention", s["RetentionPeriodHours"], 168)
			},
		},
		{
			name:  "on-demand StreamMode",
			props: kinesispipeline.KinesisDynamoPipelineProps{StreamMode: awskinesis.StreamMode_ON_DEMAND},
			check: func(t *testing.T, p *kinesispipeline.KinesisDynamoPipeline, tmpl map[string]interface{}) {
				s := testutil.Properties(t, tmpl, typeStream)
				assertEqual(t, "mode", s["StreamModeDetails"], map[string]interface{}{"StreamMode": "ON_DEMAND"})
				assertEqual(t, "no shard count", s["ShardCount"], nil)
			},
		},
		{
			name: "PartitionKey and SortKey",
			props: kinesispipeline.KinesisDynamoPipelineProps{
				PartitionKey: &awsdynamodb.Attribute{Name: jsii.String("pk"), Type: awsdynamodb.AttributeType_STRING},
				SortKey:      &awsdynamodb.Attribute{Name: jsii.String("ts"), Type: awsdynamodb.AttributeType_NUMBER},
			},
			check: func(t *testing.T, p *kinesispipeline.KinesisDynamoPipeline, tmpl map[string]interface{}) {
				id, _ := tableID(t, tmpl, "PipelineTable")
				props := testutil.Resources(tmpl, typeTable)[id]["Properties"]
				assertEqual(t, "key schema", testutil.Get(props, "KeySchema"), []interface{}{
					map[string]interface{}{"AttributeName": "pk", "KeyType": "HASH"},
					map[string]interface{}{"AttributeName": "ts", "KeyType": "RANGE"},
				})
				assertEqual(t, "config", configJSON(t, p), `{"partitionKey":{"name":"pk","type":"S","source":"$eventId"},"sortKey":{"name":"ts","type":"N","source":"ts"},"metadata":["_kinesisArrivalTime"]}`)
			},
		},
		{
			name:  "RemovalPolicy DESTROY",
			props: kinesispipeline.KinesisDynamoPipelineProps{RemovalPolicy: awscdk.RemovalPolicy_DESTROY},
			check: func(t *testing.T, p *kinesispipeline.KinesisDynamoPipeline, tmpl map[string]interface{}) {
				for _, typ := range []string{typeStream, typeTable, typeQueue, typeLogGroup} {
					for id, r := range testutil.Resources(tmpl, typ) {
						assertEqual(t, id+" DeletionPolicy", r["DeletionPolicy"], "Delete")
					}
				}
			},
		},
		{
			name: "function settings",
			props: kinesispipeline.KinesisDynamoPipelineProps{
				MemorySize:   jsii.Number(512),
				Timeout:      awscdk.Duration_Minutes(jsii.Number(2)),
				Architecture: awslambda.Architecture_X86_64(),
				Environment:  &map[string]*string{"LOG_LEVEL": jsii.String("debug")},
				LogRetention: awslogs.RetentionDays_ONE_WEEK,
			},
			check: func(t *testing.T, p *kinesispipeline.KinesisDynamoPipeline, tmpl map[string]interface{}) {
				fn := testutil.Properties(t, tmpl, typeFunction)
				assertEqual(t, "memory", fn["MemorySize"], 512)
				assertEqual(t, "timeout", fn["Timeout"], 120)
				assertEqual(t, "arch", fn["Architectures"], []string{"x86_64"})
				assertEqual(t, "user variable", testutil.Get(fn, "Environment", "Variables", "LOG_LEVEL"), "debug")
				if testutil.Get(fn, "Environment", "Variables", processor.EnvTableName) == nil {
					t.Error("the construct's own variables must stay")
				}
				assertEqual(t, "log retention", testutil.Properties(t, tmpl, typeLogGroup)["RetentionInDays"], 7)
			},
		},
		{
			name: "mapping settings",
			props: kinesispipeline.KinesisDynamoPipelineProps{
				BatchSize:                 jsii.Number(500),
				MaxBatchingWindow:         awscdk.Duration_Seconds(jsii.Number(5)),
				ParallelizationFactor:     jsii.Number(3),
				StartingPosition:          awslambda.StartingPosition_AT_TIMESTAMP,
				StartingPositionTimestamp: jsii.Number(1700000000),
				RetryAttempts:             jsii.Number(3),
				MaxRecordAge:              awscdk.Duration_Hours(jsii.Number(1)),
				BisectBatchOnError:        jsii.Bool(false),
				Enabled:                   jsii.Bool(false),
			},
			check: func(t *testing.T, p *kinesispipeline.KinesisDynamoPipeline, tmpl map[string]interface{}) {
				m := testutil.Properties(t, tmpl, typeMapping)
				for key, want := range map[string]interface{}{
					"BatchSize": 500, "MaximumBatchingWindowInSeconds": 5, "ParallelizationFactor": 3,
					"StartingPosition": "AT_TIMESTAMP", "StartingPositionTimestamp": 1700000000, "MaximumRetryAttempts": 3,
					"MaximumRecordAgeInSeconds": 3600, "BisectBatchOnFunctionError": false, "Enabled": false,
					"FunctionResponseTypes": []string{"ReportBatchItemFailures"},
				} {
					assertEqual(t, key, m[key], want)
				}
			},
		},
		{
			name:  "UnlimitedRetries",
			props: kinesispipeline.KinesisDynamoPipelineProps{UnlimitedRetries: jsii.Bool(true)},
			check: func(t *testing.T, p *kinesispipeline.KinesisDynamoPipeline, tmpl map[string]interface{}) {
				m := testutil.Properties(t, tmpl, typeMapping)
				assertEqual(t, "retries", m["MaximumRetryAttempts"], -1)
				assertEqual(t, "record age (unset means unlimited)", m["MaximumRecordAgeInSeconds"], nil)
			},
		},
		{
			name:  "EnhancedFanOut",
			props: kinesispipeline.KinesisDynamoPipelineProps{EnhancedFanOut: jsii.Bool(true)},
			check: func(t *testing.T, p *kinesispipeline.KinesisDynamoPipeline, tmpl map[string]interface{}) {
				consumerID, _ := testutil.OneResource(t, tmpl, "AWS::Kinesis::StreamConsumer")
				m := testutil.Properties(t, tmpl, typeMapping)
				assertEqual(t, "source", m["EventSourceArn"], map[string]interface{}{"Fn::GetAtt": []string{consumerID, "ConsumerARN"}})
				doc, _ := json.Marshal(testutil.Properties(t, tmpl, typePolicy))
				if !strings.Contains(string(doc), consumerID) {
					t.Errorf("role must be allowed to read the consumer %s: %s", consumerID, doc)
				}
			},
		},
		{
			name:  "ErrorRetention",
			props: kinesispipeline.KinesisDynamoPipelineProps{ErrorRetention: awscdk.Duration_Days(jsii.Number(30))},
			check: func(t *testing.T, p *kinesispipeline.KinesisDynamoPipeline, tmpl map[string]interface{}) {
				id, _ := tableID(t, tmpl, "PipelineErrorTable")
				assertEqual(t, "TTL", testutil.Get(testutil.Resources(tmpl, typeTable)[id], "Properties", "TimeToLiveSpecification"),
					map[string]interface{}{"AttributeName": processor.ErrorTTLAttribute, "Enabled": true})
				assertEqual(t, "config", configJSON(t, p), `{"partitionKey":{"name":"id","type":"S","source":"$eventId"},"errorTtlSeconds":2592000,"metadata":["_kinesisArrivalTime"]}`)
			},
		},
		{
			name:  "ErrorTableEnabled false",
			props: kinesispipeline.KinesisDynamoPipelineProps{ErrorTableEnabled: jsii.Bool(false)},
			check: func(t *testing.T, p *kinesispipeline.KinesisDynamoPipeline, tmpl map[string]interface{}) {
				if n := len(testutil.Resources(tmpl, typeTable)); n != 1 {
					t.Errorf("want only the data table, got %d tables", n)
				}
				if v := testutil.Get(testutil.Properties(t, tmpl, typeFunction), "Environment", "Variables", processor.EnvErrorTableName); v != nil {
					t.Errorf("no error table: %s must be unset, got %v", processor.EnvErrorTableName, v)
				}
			},
		},
		{
			name:  "DeadLetterQueueEnabled false",
			props: kinesispipeline.KinesisDynamoPipelineProps{DeadLetterQueueEnabled: jsii.Bool(false)},
			check: func(t *testing.T, p *kinesispipeline.KinesisDynamoPipeline, tmpl map[string]interface{}) {
				assertEqual(t, "queues", len(testutil.Resources(tmpl, typeQueue)), 0)
				assertEqual(t, "destination", testutil.Properties(t, tmpl, typeMapping)["DestinationConfig"], nil)
			},
		},
		{
			name:  "FailureBucketEnabled",
			props: kinesispipeline.KinesisDynamoPipelineProps{FailureBucketEnabled: jsii.Bool(true)},
			check: func(t *testing.T, p *kinesispipeline.KinesisDynamoPipeline, tmpl map[string]interface{}) {
				bucketID, bucket := testutil.OneResource(t, tmpl, typeBucket)
				assertEqual(t, "queues", len(testutil.Resources(tmpl, typeQueue)), 0)
				assertEqual(t, "encryption", testutil.Get(bucket, "Properties", "BucketEncryption", "ServerSideEncryptionConfiguration", "0",
					"ServerSideEncryptionByDefault", "SSEAlgorithm"), "AES256")
				assertEqual(t, "public access", testutil.Get(bucket, "Properties", "PublicAccessBlockConfiguration", "RestrictPublicBuckets"), true)
				assertEqual(t, "retained", bucket["DeletionPolicy"], "Retain")
				assertEqual(t, "destination", testutil.Get(testutil.Properties(t, tmpl, typeMapping), "DestinationConfig", "OnFailure", "Destination"),
					map[string]interface{}{"Fn::GetAtt": []string{bucketID, "Arn"}})
				policy, _ := json.Marshal(testutil.Properties(t, tmpl, "AWS::S3::BucketPolicy"))
				if !strings.Contains(string(policy), "aws:SecureTransport") {
					t.Errorf("bucket policy must deny plain HTTP: %s", policy)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			props := tt.props
			_, p, tmpl := synth(t, &props)
			tt.check(t, p, tmpl)
		})
	}
}

// tableID returns the logical ID of the table whose ID starts with prefix.
func tableID(t *testing.T, tmpl map[string]interface{}, prefix string) (string, map[string]interface{}) {
	t.Helper()
	for id, r := range testutil.Resources(tmpl, typeTable) {
		if strings.HasPrefix(id, prefix) && !strings.HasPrefix(id, prefix+"Error") && (prefix != "PipelineTable" || !strings.Contains(id, "Error")) {
			return id, r
		}
	}
	t.Fatalf("no table with logical ID prefix %s", prefix)
	return "", nil
}

// configJSON returns the processor configuration the pipeline bundles, as compact JSON.
func configJSON(t *testing.T, p *kinesispipeline.KinesisDynamoPipeline) string {
	t.Helper()
	b, err := json.Marshal(p.ProcessorConfig())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestExistingResources(t *testing.T) {
	stack := testutil.NewStack()
	stream := awskinesis.Stream_FromStreamArn(stack, jsii.String("S"), jsii.String("arn:aws:kinesis:eu-west-1:123456789012:stream/existing"))
	table := awsdynamodb.TableV2_FromTableName(stack, jsii.String("T"), jsii.String("existing-table"))
	errorTable := awsdynamodb.Table_FromTableName(stack, jsii.String("E"), jsii.String("existing-errors"))
	queue := awssqs.Queue_FromQueueArn(stack, jsii.String("Q"), jsii.String("arn:aws:sqs:eu-west-1:123456789012:existing-dlq"))
	var p *kinesispipeline.KinesisDynamoPipeline
	testutil.Must(t, func() {
		p = kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{
			Stream:          stream,
			Table:           table,
			PartitionKey:    &awsdynamodb.Attribute{Name: jsii.String("id"), Type: awsdynamodb.AttributeType_STRING},
			ErrorTable:      errorTable,
			DeadLetterQueue: queue,
		})
	})
	tmpl := testutil.Template(t, stack)
	for _, typ := range []string{typeStream, typeTable, typeQueue} {
		if n := len(testutil.Resources(tmpl, typ)); n != 0 {
			t.Errorf("existing resources given: want no %s, got %d", typ, n)
		}
	}
	m := testutil.Properties(t, tmpl, typeMapping)
	assertEqual(t, "source", m["EventSourceArn"], "arn:aws:kinesis:eu-west-1:123456789012:stream/existing")
	assertEqual(t, "destination", testutil.Get(m, "DestinationConfig", "OnFailure", "Destination"), "arn:aws:sqs:eu-west-1:123456789012:existing-dlq")
	vars := testutil.Get(testutil.Properties(t, tmpl, typeFunction), "Environment", "Variables")
	assertEqual(t, "table name", testutil.Get(vars, processor.EnvTableName), "existing-table")
	assertEqual(t, "error table name", testutil.Get(vars, processor.EnvErrorTableName), "existing-errors")
	if p.Stream() != stream || p.DeadLetterQueue() != queue {
		t.Error("accessors must return the resources passed in")
	}
}

func TestExistingFailureBucket(t *testing.T) {
	stack := testutil.NewStack()
	bucket := awss3.Bucket_FromBucketName(stack, jsii.String("B"), jsii.String("existing-failures"))
	testutil.Must(t, func() {
		kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), &kinesispipeline.KinesisDynamoPipelineProps{FailureBucket: bucket})
	})
	tmpl := testutil.Template(t, stack)
	assertEqual(t, "queues", len(testutil.Resources(tmpl, typeQueue)), 0)
	dest, _ := json.Marshal(testutil.Get(testutil.Properties(t, tmpl, typeMapping), "DestinationConfig", "OnFailure", "Destination"))
	if !strings.Contains(string(dest), "existing-failures") {
		t.Errorf("destination must be the bucket passed in, got %s", dest)
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name  string
		props kinesispipeline.KinesisDynamoPipelineProps
		want  string
	}{
		{"no on-failure destination", kinesispipeline.KinesisDynamoPipelineProps{DeadLetterQueueEnabled: jsii.Bool(false)}, "batches the event source mapping gives up on are discarded"},
		{"record age past retention", kinesispipeline.KinesisDynamoPipelineProps{MaxRecordAge: awscdk.Duration_Days(jsii.Number(3))}, "MaxRecordAge is longer than the stream's RetentionPeriod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			props := tt.props
			stack, _, _ := synth(t, &props)
			w := testutil.Warnings(t, stack)
			if len(w) != 1 || !strings.Contains(w[0], tt.want) {
				t.Errorf("want one warning containing %q, got %q", tt.want, w)
			}
		})
	}
}

func TestGrants(t *testing.T) {
	stack := testutil.NewStack()
	var p *kinesispipeline.KinesisDynamoPipeline
	testutil.Must(t, func() { p = kinesispipeline.NewKinesisDynamoPipeline(stack, jsii.String("Pipeline"), nil) })
	producer := awsiam.NewRole(stack, jsii.String("Producer"), &awsiam.RoleProps{AssumedBy: awsiam.NewAccountRootPrincipal()})
	reader := awsiam.NewRole(stack, jsii.String("Reader"), &awsiam.RoleProps{AssumedBy: awsiam.NewAccountRootPrincipal()})
	testutil.Must(t, func() {
		p.GrantWrite(producer)
		p.GrantReadData(reader)
	})
	tmpl := testutil.Template(t, stack)
	for prefix, want := range map[string]string{"ProducerDefaultPolicy": "kinesis:PutRecords", "ReaderDefaultPolicy": "dynamodb:Query"} {
		found := false
		for id, r := range testutil.Resources(tmpl, typePolicy) {
			if strings.HasPrefix(id, prefix) {
				doc, _ := json.Marshal(r)
				found = strings.Contains(string(doc), want)
			}
		}
		if !found {
			t.Errorf("%s must allow %s", prefix, want)
		}
	}
}
