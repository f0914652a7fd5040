//go:build integration

package kdplocal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	replaycli "github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/replay/cli"
)

// TestLocalAggregatesExample runs examples/aggregates through kdp local: the AWS sample's readings are stored and
// counted per category per minute in the aggregate table kdp local creates from the template; a reading without a
// Timestamp goes to the error table and counts nowhere.
func TestLocalAggregatesExample(t *testing.T) {
	dir := synthExample(t, "aggregates")
	var records strings.Builder
	type reading struct {
		ts, cat string
		value   int
	}
	readings := []reading{{"2024-09-13T23:06:55Z", "C", 81}, {"2024-09-13T23:06:10Z", "C", 19}, {"2024-09-13T23:06:59Z", "A", 5},
		{"2024-09-13T23:07:01Z", "C", 40}, {"2024-09-13T23:06:30Z", "A", 7}}
	for i, r := range readings {
		fmt.Fprintf(&records, `{"data": {"Timestamp": %q, "Value": %d, "Category": %q}, "partitionKey": "sensor-%d"}`+"\n", r.ts, r.value, r.cat, i)
	}
	records.WriteString(`{"data": {"Value": 3, "Category": "C"}, "partitionKey": "no-time"}` + "\n")
	// With --keep: the printed kdp replay names the aggregate table, and replaying records the pipeline counted
	// counts none of them again.
	var stdout, stderr emulators.LockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int)
	go func() {
		done <- Main(ctx, []string{"--cdk-out", dir, "--stack", "KinesisDynamoPipelineAggregates", "--json", "--keep"},
			strings.NewReader(records.String()), &stdout, &stderr)
	}()
	select {
	case code := <-done:
		t.Fatalf("exit %d before --keep printed its endpoints\nstderr: %s", code, stderr.String())
	case <-waitFor(&stderr, "kdp replay "):
	}
	before, after := replayAggregates(t, stderr.String())
	cancel()
	code := <-done
	if !reflect.DeepEqual(before, after) {
		t.Errorf("the replay changed the aggregates:\nbefore %v\nafter  %v", before, after)
	}
	if code != ExitOK {
		t.Fatalf("exit %d\nstderr: %s\nstdout: %s", code, stderr.String(), stdout.String())
	}
	var res struct {
		Table      []map[string]map[string]any `json:"table"`
		ErrorTable []map[string]map[string]any `json:"errorTable"`
		Aggregates []map[string]map[string]any `json:"aggregates"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("output is not the JSON object: %v\n%s", err, stdout.String())
	}
	if len(res.Table) != len(readings) || len(res.ErrorTable) != 1 {
		t.Errorf("%d items and %d error items, want %d and 1", len(res.Table), len(res.ErrorTable), len(readings))
	}
	// One shard: one item per category and minute. Expected from the readings above.
	want := map[string][4]string{ // pk -> readings, total, lowest, highest
		`perCategory#2024-09-13T23:06:00Z#["C"]`: {"2", "100", "19", "81"},
		`perCategory#2024-09-13T23:06:00Z#["A"]`: {"2", "12", "5", "7"},
		`perCategory#2024-09-13T23:07:00Z#["C"]`: {"1", "40", "40", "40"},
	}
	if len(res.Aggregates) != len(want) {
		t.Fatalf("%d aggregate items, want %d: %v", len(res.Aggregates), len(want), res.Aggregates)
	}
	for _, it := range res.Aggregates {
		pk, _ := attr(it, "pk").(string)
		w, ok := want[pk]
		if !ok {
			t.Errorf("unexpected aggregate item %s", pk)
			continue
		}
		got := [4]string{}
		for i, m := range []string{"readings", "total", "lowest", "highest"} {
			got[i], _ = attr(it, m).(string)
		}
		if got != w {
			t.Errorf("%s: readings, total, lowest, highest = %v, want %v", pk, got, w)
		}
	}
}

// replayAggregates runs the kdp replay command --keep printed, which must name the aggregate table, against the
// emulators it printed, and returns the aggregate table's measures by item key before and after it.
func replayAggregates(t *testing.T, stderr string) (before, after map[string]map[string]string) {
	t.Helper()
	line := regexp.MustCompile(`(?m)^  (kdp replay --stream arn:aws:kinesis:\S+ --since \S+ --table \S+ --error-table \S+ --config \S+ --aggregate-table (\S+))$`).FindStringSubmatch(stderr)
	if line == nil {
		t.Fatalf("--keep printed no kdp replay line with --aggregate-table:\n%s", stderr)
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
	db := dynamodb.New(dynamodb.Options{Region: "us-east-1", BaseEndpoint: aws.String(os.Getenv("AWS_ENDPOINT_URL_DYNAMODB")),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", "")})
	measures := func() map[string]map[string]string {
		res, err := db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(line[2]), ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatalf("scan the aggregate table %s: %v", line[2], err)
		}
		out := map[string]map[string]string{}
		for _, it := range res.Items {
			pk, _ := it["pk"].(*types.AttributeValueMemberS)
			sk, _ := it["sk"].(*types.AttributeValueMemberS)
			if pk == nil || sk == nil || strings.HasPrefix(pk.Value, "_") { // the ledger's own items
				continue
			}
			m := map[string]string{}
			for _, name := range []string{"readings", "total", "lowest", "highest"} {
				if n, ok := it[name].(*types.AttributeValueMemberN); ok {
					m[name] = n.Value
				}
			}
			if m["readings"] == "" {
				t.Fatalf("aggregate item %s %s has no readings count: %v", pk.Value, sk.Value, it)
			}
			out[pk.Value+" "+sk.Value] = m
		}
		return out
	}
	before = measures()
	if len(before) == 0 {
		t.Fatal("the aggregate table is empty before the replay")
	}
	var out, errOut bytes.Buffer
	args := strings.Fields(line[1])[2:] // without "kdp replay"
	if code := replaycli.Main(context.Background(), args, &out, &errOut); code != replaycli.ExitOK {
		t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", line[1], code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "  aggregates: 0 records recounted") {
		t.Errorf("replay summary does not say no record was recounted:\n%s", out.String())
	}
	return before, measures()
}
