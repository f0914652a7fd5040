package processor

import (
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// testPositionOf returns the position of a data item written with cfg, as the tests see it without the processor's
// code: its AttrPosition, or, for an item without one under an event-id key ("shardId:seq" or "shardId:seq#n"),
// the position its key names (wantPosition, this package's independent encoder). ok is false when the item has
// neither.
func testPositionOf(cfg Config, it Item) (pos []byte, ok bool) {
	if b, isB := it[AttrPosition].(*types.AttributeValueMemberB); isB && b != nil {
		return b.Value, true
	}
	cfg = cfg.WithDefaults()
	if cfg.PartitionKey.Source != SourceEventID {
		return nil, false
	}
	k, isS := it[cfg.PartitionKey.Name].(*types.AttributeValueMemberS)
	if !isS || k == nil {
		return nil, false
	}
	shard, rest, found := strings.Cut(k.Value, ":")
	if !found {
		return nil, false
	}
	sq, n, hasSub := strings.Cut(rest, "#")
	var sub uint64
	if hasSub {
		var err error
		if sub, err = strconv.ParseUint(n, 10, 32); err != nil {
			return nil, false
		}
	}
	return wantPosition(shard, sq, uint32(sub)), true
}

func slicesSort(s []string) { sort.Strings(s) }

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
