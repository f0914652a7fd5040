package aggregate

import (
	"bytes"
	"encoding/hex"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// MaxItemCrossings bounds the give-up range crossings (AttrGapCrossings) a pipeline write leaves in an aggregate
// item: twice MaxLedgerGaps. Only the crossings of ranges the shard state still lists are ever read (by a recount
// of a record in one, or a duplicate delivering one), and the state lists the newest MaxLedgerGaps; without a
// bound, an item of a shard whose mapping gives up on batch after batch (MaximumRetryAttempts 0 and a failing
// dependency) gathers one crossing per range, about 250 bytes each, until it passes DynamoDB's 400 KB and no write
// to it succeeds again.
const MaxItemCrossings = 2 * MaxLedgerGaps

// pruneCrossings drops, from the item about to be written, the crossings of ranges not among gaps (the shard
// state's ranges as the writer read them) with the lowest ends, until at most MaxItemCrossings remain. The ranges
// dropped are older than every listed one but for ranges detected out of stream order; a crossing dropped for a
// range still listed makes a recount of its records count none after the item's fence (never twice).
func pruneCrossings(item map[string]types.AttributeValue, gaps []Gap) {
	m, ok := item[AttrGapCrossings].(*types.AttributeValueMemberM)
	if !ok || len(m.Value) <= MaxItemCrossings {
		return
	}
	listed := map[string]bool{}
	for _, g := range gaps {
		listed[g.Key()] = true
	}
	type old struct {
		key string
		end []byte
	}
	var others []old
	for k := range m.Value {
		if listed[k] {
			continue
		}
		end, err := hex.DecodeString(k[strings.LastIndexByte(k, '-')+1:])
		if err != nil {
			end = nil // not a key of this package: dropped first
		}
		others = append(others, old{k, end})
	}
	sort.Slice(others, func(i, j int) bool {
		if c := bytes.Compare(others[i].end, others[j].end); c != 0 {
			return c < 0
		}
		return others[i].key < others[j].key
	})
	kept := make(map[string]types.AttributeValue, MaxItemCrossings)
	for k, v := range m.Value {
		kept[k] = v
	}
	for _, o := range others {
		if len(kept) <= MaxItemCrossings {
			break
		}
		delete(kept, o.key)
	}
	item[AttrGapCrossings] = &types.AttributeValueMemberM{Value: kept}
}
