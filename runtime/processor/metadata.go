package processor

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Metadata attributes and what they cost
//
// Every byte an item carries beyond its payload is billed on every write (a write unit per started KB) and every
// month of storage. Config.Metadata chooses which of the four metadata attributes the default transform writes;
// by default only AttrArrivalTime (fixed size, about 43 bytes with its name): under the default event-id key the
// key itself names the shard and the sequence number, so the item's record can be found in the stream, the error
// table and the logs from the key alone. AttrSequenceNumber (about 80 bytes), AttrPartitionKey (up to 276) and
// AttrProcessedAt (about 42) are there for whoever wants them (AllMetadata).

// DefaultMetadata returns the metadata attributes the default transform writes when Config.Metadata is nil:
// AttrArrivalTime only.
func DefaultMetadata() []string { return []string{AttrArrivalTime} }

// AllMetadata returns every metadata attribute the default transform can write, in the order of the items of
// earlier versions (which wrote them all): AttrSequenceNumber, AttrPartitionKey, AttrArrivalTime, AttrProcessedAt.
func AllMetadata() []string {
	return []string{AttrSequenceNumber, AttrPartitionKey, AttrArrivalTime, AttrProcessedAt}
}

// metaSet is a compiled Config.Metadata: one bit per metadata attribute.
type metaSet uint8

const (
	metaSequenceNumber metaSet = 1 << iota
	metaPartitionKey
	metaArrivalTime
	metaProcessedAt
)

// metaBit returns the bit of metadata attribute name, 0 if it is none.
func metaBit(name string) metaSet {
	switch name {
	case AttrSequenceNumber:
		return metaSequenceNumber
	case AttrPartitionKey:
		return metaPartitionKey
	case AttrArrivalTime:
		return metaArrivalTime
	case AttrProcessedAt:
		return metaProcessedAt
	}
	return 0
}

// compileMetadata returns the set names (Config.Metadata after WithDefaults) describe and every problem, each one
// line starting with "metadata[i]:".
func compileMetadata(names []string) (metaSet, []error) {
	var set metaSet
	var errs []error
	for i, name := range names {
		bit := metaBit(name)
		switch {
		case bit == 0:
			errs = append(errs, fmt.Errorf("metadata[%d]: %q is not a metadata attribute (want %s)", i, name,
				strings.Join(AllMetadata(), ", ")))
		case set&bit != 0:
			errs = append(errs, fmt.Errorf("metadata[%d]: %s is listed twice", i, name))
		}
		set |= bit
	}
	return set, errs
}

// names returns the attribute names of s.
func (s metaSet) names() []string {
	var out []string
	for _, name := range AllMetadata() {
		if s&metaBit(name) != 0 {
			out = append(out, name)
		}
	}
	return out
}

// addMetadata sets the metadata attributes of set on item. A partition key that is not valid UTF-8 (a KPL user
// record's, which Kinesis does not check) is stored as binary, byte for byte: as a string the SDK would replace its
// invalid bytes.
func addMetadata(ctx context.Context, item Item, r *Record, set metaSet) {
	if set&metaSequenceNumber != 0 {
		item[AttrSequenceNumber] = &types.AttributeValueMemberS{Value: r.SequenceNumber}
	}
	if set&metaPartitionKey != 0 {
		if utf8.ValidString(r.PartitionKey) {
			item[AttrPartitionKey] = &types.AttributeValueMemberS{Value: r.PartitionKey}
		} else {
			item[AttrPartitionKey] = &types.AttributeValueMemberB{Value: []byte(r.PartitionKey)}
		}
	}
	if set&metaArrivalTime != 0 {
		item[AttrArrivalTime] = &types.AttributeValueMemberS{Value: formatTime(r.ArrivalTime)}
	}
	if set&metaProcessedAt != 0 {
		item[AttrProcessedAt] = &types.AttributeValueMemberS{Value: processedAtString(ctx)}
	}
}

// Positions derived from an event-id key
//
// Under the default key (the partition key is the record's event id, Config.PartitionKey.Source SourceEventID) and
// the processor's own transform, an item's key names the one record that writes it: "shardId:sequenceNumber", or
// "shardId:sequenceNumber#n" for user record n of a KPL aggregate. No other record ever writes that key (a replay or
// a redrive of the same record writes the same item), so later-wins within a shard holds trivially, and the item's
// position can be read from its key instead of being stored: such items carry no AttrPosition (55 bytes saved on
// every item). Wherever the processor reads an item's position (an insert-only write telling a rerun from another
// record's item), an item without AttrPosition under such a key has the position its key names.

// PositionFromEventID returns the position (EncodePosition) an event id names: "shardId:sequenceNumber" (sub-sequence
// number 0) or "shardId:sequenceNumber#n" (sub-sequence number n, decimal without leading zeros). Anything else is an
// error.
func PositionFromEventID(id string) ([]byte, error) {
	shard, rest, ok := strings.Cut(id, ":")
	if !ok {
		return nil, fmt.Errorf("position: event id has no colon (want shardId:sequenceNumber)")
	}
	seq, n, hasSub := strings.Cut(rest, "#")
	sub := 0
	if hasSub {
		if n == "" || len(n) > 10 || n[0] == '0' && n != "0" || strings.Trim(n, "0123456789") != "" {
			return nil, fmt.Errorf("position: event id's sub-sequence number is not a decimal number without leading zeros")
		}
		v, err := strconv.ParseUint(n, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("position: event id's sub-sequence number is out of range")
		}
		sub = int(v)
	}
	return EncodePosition(shard, seq, sub)
}

// derivesPosition reports whether the processor's items carry their position in their key rather than in
// AttrPosition: the partition key is the event id and the processor's own transform (DefaultTransform, declarative
// or not) builds the items. A user's Transform may key items by anything, so its items always carry AttrPosition.
func (p *Processor) derivesPosition() bool {
	return p.defaultTransform && p.opts.Config.PartitionKey.Source == SourceEventID
}

// keyNamesPosition reports whether item's partition key (named pk) is r's event id and that event id names r's
// position exactly ("shardId:sequenceNumber", plus "#n" for a KPL user record), so that PositionFromEventID(key)
// gives what EncodePosition gave for r and the item can go without AttrPosition. It is false for a hand-made event
// whose event id disagrees with its sequence number: that item keeps AttrPosition. It does not allocate.
func keyNamesPosition(item Item, pk string, r *Record) bool {
	k, ok := item[pk].(*types.AttributeValueMemberS)
	if !ok || k == nil || k.Value != r.EventID {
		return false
	}
	id, shard := r.EventID, r.ShardID
	if shard == "" || len(id) <= len(shard) || id[:len(shard)] != shard || id[len(shard)] != ':' {
		return false
	}
	rest, ok := strings.CutPrefix(id[len(shard)+1:], r.SequenceNumber)
	if !ok {
		return false
	}
	if !r.Aggregated {
		return rest == "" && r.SubSequenceNumber == 0
	}
	return len(rest) > 1 && rest[0] == '#' && rest[1:] == strconv.Itoa(r.SubSequenceNumber)
}

// storedPosition returns the position of an item the table holds: its AttrPosition, or, when it has none and the
// processor derives positions (derivesPosition), the position its partition key names. nil means none.
func (p *Processor) storedPosition(item Item) []byte {
	if pos := itemPosition(item); pos != nil || !p.derivesPosition() {
		return pos
	}
	k, ok := item[p.opts.Config.PartitionKey.Name].(*types.AttributeValueMemberS)
	if !ok || k == nil {
		return nil
	}
	pos, err := PositionFromEventID(k.Value)
	if err != nil {
		return nil
	}
	return pos
}
