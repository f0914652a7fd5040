//go:build integration && !kdp_noexpr

package processor_test

import (
	"context"
	"io"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/aggregate"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// TestIntegrationAggregates runs the exactly-once schedule against dynalite, through the stand-in forwarding with
// throttling and requests dropped after dynalite applied them: dynalite evaluates the fence's conditions (binary
// equality, attribute_not_exists) and answers aggregate.Totals' Query. Every total read back with Totals must equal
// the one computed from the inputs.
func TestIntegrationAggregates(t *testing.T) {
	endpoint := emulators.Dynalite(t)
	direct := emulators.DynamoDBClient(endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	data, errs, aggs := emulators.UniqueName("aggdata"), emulators.UniqueName("aggerr"), emulators.UniqueName("agg")
	for _, name := range []string{data, errs} {
		if err := emulators.CreateTable(ctx, direct, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := emulators.CreateAggregateTable(ctx, direct, aggs); err != nil {
		t.Fatal(err)
	}
	s := dynamostandin.New(dynamostandin.Options{Upstream: endpoint, Seed: 5, ThrottleRate: 0.15, DropRate: 0.05, DropAfterApply: true})
	t.Cleanup(s.Close)
	client := processor.NewDynamoDBClient(emulators.AWSConfig(), func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(s.URL())
		o.RetryMaxAttempts = 1
	})
	cfg := aggConfig()
	p, err := processor.New(client, func(o *processor.Options) {
		o.TableName, o.ErrorTableName, o.AggregateTableName = data, errs, aggs
		o.Config = cfg
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		o.MetricsWriter = io.Discard
	})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	var mu sync.Mutex
	inputs := aggInputs(rng, 2, 150)
	runAggSchedule(t, p, rng, &mu, inputs)

	want := aggOracle(t, inputs)
	checked := 0
	for key, measures := range want {
		// key: "<name>#<window start>#[\"<group>\"]"
		parts := strings.SplitN(key, "#", 3)
		ws, err := time.Parse(time.RFC3339, parts[1])
		if err != nil {
			t.Fatal(err)
		}
		var ac processor.AggregateConfig
		for _, a := range cfg.Aggregates {
			if a.Name == parts[0] {
				ac = a
			}
		}
		group := strings.Trim(parts[2], `[]"`)
		tot, err := aggregate.Totals(ctx, direct, aggs, aggregate.Query{Name: ac.Name, Measures: ac.MeasureList(),
			Group: []any{group}, Window: time.Duration(ac.WindowSeconds) * time.Second, Time: ws})
		if err != nil {
			t.Fatal(err)
		}
		for m, w := range measures {
			g, ok := tot.Values[m]
			if !ok {
				t.Errorf("%s %s: missing, want %s", key, m, w.FloatString(2))
				continue
			}
			if r, _ := new(big.Rat).SetString(g.String()); r.Cmp(w) != 0 {
				t.Errorf("%s %s = %s, want %s", key, m, g, w.FloatString(2))
			}
		}
		if len(tot.Values) != len(measures) {
			t.Errorf("%s: %d measures, want %d", key, len(tot.Values), len(measures))
		}
		checked++
	}
	if st := s.Stats(); st.Throttled == 0 || st.Dropped == 0 || checked == 0 {
		t.Errorf("checked %d totals; faults %+v", checked, st)
	}
}
