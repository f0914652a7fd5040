package processor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
)

// AttrPosition is the reserved attribute holding a data item's position in the stream (B): the shard, sequence
// number and sub-sequence number of the record that wrote it, encoded by EncodePosition. The processor sets it after
// the transform on every data item whose key does not name its position (see PositionFromEventID and the package
// documentation: under the default event-id key, the processor's own verified items go without it); it never comes
// from a payload or a transform's output (a record whose transform returns it, or whose payload has a top-level
// field of that name under the default transform, fails permanently). Conditional writes (Options.ConditionalWrites,
// Options.InsertOnly) rely on it, or on the event-id key, alone.
const AttrPosition = "_kpos"

// Limits of EncodePosition's input.
const (
	maxPositionShard  = 255 // bytes of a shard id (Kinesis' are at most 128)
	maxPositionDigits = 255 // digits of a sequence number (Kinesis' have up to 129)
)

// EncodePosition encodes a record's position for AttrPosition:
//
//	[1 byte: len(shardID)] shardID [1 byte: len(m)] m [4 bytes: sub, big-endian]
//
// where m is the sequence number's magnitude as a big-endian unsigned integer without leading zero bytes (empty for
// zero) and sub the KPL user record's index in its aggregate (0 for a plain record). For two positions of the same
// shard, bytes.Compare orders them as Kinesis orders the records: by sequence number (a shorter magnitude is a
// smaller number), then by sub-sequence number. Positions of different shards differ in their prefix
// (PositionShardPrefix) and are not ordered: sequence numbers are ordered within a shard only.
//
// The shard id must be 1 to 255 bytes, the sequence number 1 to 255 decimal digits (ASCII 0-9 only), sub between 0
// and 2^32-1; anything else is an error (Lambda's events always qualify; hand-made test events may not).
func EncodePosition(shardID, seq string, sub int) ([]byte, error) {
	prefix, err := PositionShardPrefix(shardID)
	if err != nil {
		return nil, err
	}
	if seq == "" {
		return nil, errors.New("position: the sequence number is empty")
	}
	if len(seq) > maxPositionDigits {
		return nil, fmt.Errorf("position: the sequence number has %d digits, more than %d", len(seq), maxPositionDigits)
	}
	for i := 0; i < len(seq); i++ {
		if seq[i] < '0' || seq[i] > '9' {
			return nil, fmt.Errorf("position: the sequence number is not a decimal number (byte %d is not a digit 0-9)", i)
		}
	}
	if sub < 0 || int64(sub) > math.MaxUint32 {
		return nil, fmt.Errorf("position: sub-sequence number %d is outside 0..%d", sub, uint32(math.MaxUint32))
	}
	var m big.Int
	m.SetString(seq, 10) // cannot fail: only digits
	mag := m.Bytes()     // 255 digits fit in 106 bytes
	out := make([]byte, 0, len(prefix)+1+len(mag)+4)
	out = append(out, prefix...)
	out = append(out, byte(len(mag)))
	out = append(out, mag...)
	return binary.BigEndian.AppendUint32(out, uint32(sub)), nil
}

// PositionShardPrefix returns the prefix every position of shardID starts with (see EncodePosition): its length byte
// and its bytes. A conditional write compares positions only when the stored one has this prefix.
func PositionShardPrefix(shardID string) ([]byte, error) {
	if shardID == "" {
		return nil, errors.New("position: the shard id is empty (an event id is \"shardId:sequenceNumber\")")
	}
	if len(shardID) > maxPositionShard {
		return nil, fmt.Errorf("position: the shard id is %d bytes, more than %d", len(shardID), maxPositionShard)
	}
	out := make([]byte, 0, 1+len(shardID))
	out = append(out, byte(len(shardID)))
	return append(out, shardID...), nil
}

// unverifiedMark is the first byte of an unverified position (see UnverifiedPosition). A position made by
// EncodePosition never starts with it: its first byte is the shard id's length, at least 1.
const unverifiedMark = 0x00

// UnverifiedPosition returns position p marked as unverified: what an item written with Options.InsertOnly carries
// (a record nothing could check against the stream, such as a redriven payload past the stream's retention). Its
// sequence number is only what the source claimed, so it must never outrank a verified record: a conditional write
// (Options.ConditionalWrites) replaces an item with an unverified position whatever it claims. Marking an
// unverified position again returns it unchanged.
func UnverifiedPosition(p []byte) []byte {
	if PositionUnverified(p) {
		return p
	}
	return append([]byte{unverifiedMark}, p...)
}

// PositionUnverified reports whether p is an unverified position (UnverifiedPosition).
func PositionUnverified(p []byte) bool { return len(p) > 0 && p[0] == unverifiedMark }

// samePosition reports whether a and b name the same record, verified or not.
func samePosition(a, b []byte) bool {
	if PositionUnverified(a) {
		a = a[1:]
	}
	if PositionUnverified(b) {
		b = b[1:]
	}
	return len(a) > 0 && string(a) == string(b)
}

// DecodePosition decodes a position made by EncodePosition, or marked by UnverifiedPosition: the shard id, the
// sequence number (decimal, without leading zeros) and the sub-sequence number.
func DecodePosition(p []byte) (shardID, seq string, sub int, err error) {
	if PositionUnverified(p) {
		p = p[1:]
	}
	if len(p) < 1 || int(p[0]) == 0 || len(p) < 1+int(p[0])+1+4 {
		return "", "", 0, errors.New("position: too short")
	}
	n := int(p[0])
	shardID = string(p[1 : 1+n])
	rest := p[1+n:]
	m := int(rest[0])
	if len(rest) != 1+m+4 {
		return "", "", 0, fmt.Errorf("position: %d bytes after the shard id, want %d", len(rest), 1+m+4)
	}
	mag := rest[1 : 1+m]
	if m > 0 && mag[0] == 0 {
		return "", "", 0, errors.New("position: the sequence number's magnitude has a leading zero byte")
	}
	seq = new(big.Int).SetBytes(mag).String()
	return shardID, seq, int(binary.BigEndian.Uint32(rest[1+m:])), nil
}
