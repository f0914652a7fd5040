//go:build integration

package replay_test

import (
	"context"
	"encoding/binary"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/replay"
)

// attackMetaPosition encodes a position as the package documentation of processor.EncodePosition describes it,
// independently of that code: [len(shard)] shard [len(m)] m [sub, 4 bytes big-endian], m the sequence number's
// magnitude without leading zero bytes.
func attackMetaPosition(shard, seq string, sub uint32) []byte {
	m, ok := new(big.Int).SetString(seq, 10)
	if !ok {
		panic("not a decimal sequence number: " + seq)
	}
	mag := m.Bytes()
	out := append([]byte{byte(len(shard))}, shard...)
	out = append(out, byte(len(mag)))
	out = append(out, mag...)
	return binary.BigEndian.AppendUint32(out, sub)
}

// TestAttackMetaDryRunPredictsMigration: under the default event-id key, the items this version writes carry no
// position (their key names it), while the previous version's items carry their own record's position. A replay
// rewrites such an item (the same record: not later than itself); its dry run must predict that, not "superseded"
// (the dry run compared the stored position with the written item's position attribute, which is now absent). The
// oracle: what the real run then did, read back from dynalite, and the counts the dry run printed.
func TestAttackMetaDryRunPredictsMigration(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := processor.Config{} // the default: keyed by the event id, arrival time only
	e := newEnv(t, 1, cfg)
	since := mark()
	puts := e.putAll(t, "", byN, numbered("new", 0, 3)...)
	until := mark()
	// The table as the previous version left it: each record's item with its own verified position.
	for _, p := range puts {
		shard, seq, _ := strings.Cut(p.id, ":")
		_, err := e.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(e.table), Item: map[string]types.AttributeValue{
			"id":                   &types.AttributeValueMemberS{Value: p.id},
			"label":                &types.AttributeValueMemberS{Value: "old"},
			processor.AttrPosition: &types.AttributeValueMemberB{Value: attackMetaPosition(shard, seq, 0)},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	dry := e.run(t, ctx, func(o *replay.Options) { o.Since, o.Until, o.Config, o.DryRun = since, until, cfg, true })
	before, _ := scan(t, e.db, e.table, "id")
	for _, p := range puts {
		if attr(before[p.id], "label") != "old" {
			t.Fatalf("the dry run changed item %s: %v", p.id, before[p.id])
		}
	}
	live := e.run(t, ctx, func(o *replay.Options) { o.Since, o.Until, o.Config = since, until, cfg })
	after, _ := scan(t, e.db, e.table, "id")
	rewritten := 0
	for _, p := range puts {
		if attr(after[p.id], "label") == "new" {
			rewritten++
		}
	}
	if rewritten != len(puts) || live.Records.Written != len(puts) {
		t.Fatalf("the real run rewrote %d items (counted %+v), want %d", rewritten, live.Records, len(puts))
	}
	if c := dry.Records; c.Written != rewritten || c.Superseded != 0 {
		t.Errorf("dry run predicted %+v; the real run rewrote %d of %d items and superseded none", c, rewritten, len(puts))
	}
}
