//go:build integration

package redrive_test

import (
	"context"
	"math/big"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/aggregate"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// aggCountConfig is a configuration with one aggregate counting records per minute (measure n).
func aggCountConfig() processor.Config {
	cfg := processor.DefaultConfig()
	cfg.Aggregates = []processor.AggregateConfig{{Name: "perMinute", WindowSeconds: 60,
		Measures: []processor.AggregateMeasure{{Name: "n", Kind: "count"}}}}
	return cfg
}

// setShardState writes the aggregate ledger's state of shard as the pipeline would have left it.
func setShardState(t *testing.T, e *env, table, shard string, attrs map[string]types.AttributeValue) {
	t.Helper()
	item := map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: aggregate.ShardStatePartitionKey}, "sk": &types.AttributeValueMemberS{Value: shard},
	}
	for k, v := range attrs {
		item[k] = v
	}
	if _, err := e.db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
		t.Fatal(err)
	}
}

// countedN sums measure n over the aggregate table's items (not the ledger's), exactly.
func countedN(t *testing.T, e *env, table string) *big.Int {
	t.Helper()
	out, err := e.db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	n := new(big.Int)
	for _, it := range out.Items {
		if aggregate.IsLedgerItem(it) {
			continue
		}
		if v, ok := it["n"].(*types.AttributeValueMemberN); ok {
			k, ok := new(big.Int).SetString(v.Value, 10)
			if !ok {
				t.Fatalf("n = %q", v.Value)
			}
			n.Add(n, k)
		}
	}
	return n
}

// positionAfter is a position of shard far after sequence number seq.
func positionAfter(t *testing.T, shard, seq string) []byte {
	t.Helper()
	n, _ := new(big.Int).SetString(seq, 10)
	p, err := processor.EncodePosition(shard, n.Add(n, big.NewInt(1000)).String(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAtkErrorsForgottenEntryKept: an error entry (the stream confirms it) for a record before the end of a give-up
// range the ledger dropped, without a marker: nothing tells whether the pipeline counted it, so the redrive stores
// it, counts nothing and must keep the entry (no source deleted while a record is left uncounted), as the DLQ and
// S3 modes do. The oracle is the error table and the aggregate table as read back from dynalite.
func TestAtkErrorsForgottenEntryKept(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	seqs, shard := e.put(t, `{"n":1}`)
	agg := emulators.UniqueName("agg")
	if err := emulators.CreateAggregateTable(ctx, e.db, agg); err != nil {
		t.Fatal(err)
	}
	bound := positionAfter(t, shard, seqs[0])
	setShardState(t, e, agg, shard, map[string]types.AttributeValue{
		aggregate.AttrVersion:   &types.AttributeValueMemberN{Value: "7"},
		aggregate.AttrDelivered: &types.AttributeValueMemberB{Value: bound},
		aggregate.AttrForgot:    &types.AttributeValueMemberB{Value: bound},
	})
	e.putEntryFailing(t, shard+":"+seqs[0], shard, seqs[0], `{"n":1}`)
	for run := 0; run < 2; run++ {
		var results []redrive.Result
		sum, err := newRedriver(t, e.clients(), e, func(o *redrive.Options) {
			o.Config, o.AggregateTableName = aggCountConfig(), agg
			o.Result = func(res redrive.Result) { results = append(results, res) }
		}).Errors(ctx, redrive.ErrorsInput{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := items(t, e.db, e.errors)[shard+":"+seqs[0]]; !ok {
			t.Errorf("run %d: the entry was deleted, though its record was left uncounted (summary %+v)", run, sum)
		}
		if n := countedN(t, e, agg); n.Sign() != 0 {
			t.Errorf("run %d: %s records counted, want none (forgotten)", run, n)
		}
		if sum.Records.Forgotten != 1 || sum.Unrecovered() != 1 || sum.Removed != 0 {
			t.Errorf("run %d: summary %+v, want 1 forgotten record, its source left", run, sum)
		}
		if len(results) != 1 || results[0].Outcome != redrive.OutcomeFailed || !strings.Contains(results[0].Reason, "give-up range") {
			t.Errorf("run %d: results %+v, want one failed, naming the dropped give-up range", run, results)
		}
	}
}
