// Package kpl reads and writes the Kinesis Producer Library's aggregated record format, in which one Kinesis record
// carries many user records.
//
// An aggregated record is the 4 bytes of Magic, then a protobuf message
//
//	message AggregatedRecord {
//	  repeated string partition_key_table     = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records                 = 3;
//	}
//	message Record {
//	  required uint64 partition_key_index     = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes  data                    = 3;
//	  repeated Tag    tags                    = 4;
//	}
//
// then the 16-byte MD5 of the protobuf bytes (the public format of awslabs/kinesis-aggregation). Deaggregate splits such
// a record into its user records; Aggregate builds one, for tests and producers. Tags are not read or written.
//
// A record that starts with Magic but fails its checksum or does not parse is reported as an error rather than
// passed on as a plain record: the prefix is not valid UTF-8, so no text or JSON payload starts with it.
package kpl

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Magic is the prefix of every aggregated record: the bytes F3 89 9A C2.
const Magic = "\xf3\x89\x9a\xc2"

// checksumSize is the size of the MD5 trailer.
const checksumSize = md5.Size

// UserRecord is one record a producer put, as carried inside an aggregated record.
type UserRecord struct {
	// PartitionKey is the user record's partition key, as the producer wrote it: unlike a Kinesis record's, it is not
	// checked by Kinesis, so it may be longer than 256 characters (up to the aggregate's size) and need not be valid
	// UTF-8. Store it as bytes when it is not (runtime/processor does).
	PartitionKey string
	// ExplicitHashKey is the user record's explicit hash key, "" for none. Kinesis routes the whole aggregated record
	// by the aggregate's own keys, so this only tells what the producer asked for.
	ExplicitHashKey string
	// Data is the user record's payload. Deaggregate returns a slice of its input, not a copy.
	Data []byte
}

// Errors Deaggregate returns, possibly wrapped with details: test them with errors.Is.
var (
	// ErrNotAggregated means the record does not start with Magic: it is a plain record.
	ErrNotAggregated = errors.New("kpl: not an aggregated record (no magic prefix)")
	// ErrChecksum means the MD5 trailer does not match the protobuf bytes: the aggregated record is corrupt or
	// truncated.
	ErrChecksum = errors.New("kpl: aggregated record checksum mismatch (corrupt or truncated)")
	// ErrMalformed means the aggregated record is too short to hold its checksum, or its checksum matches but its
	// protobuf message is invalid (bad wire format, a missing required field, an index outside its table).
	ErrMalformed = errors.New("kpl: malformed aggregated record")
)

// Field numbers of the format.
const (
	fieldPartitionKeyTable    protowire.Number = 1
	fieldExplicitHashKeyTable protowire.Number = 2
	fieldRecords              protowire.Number = 3

	fieldPartitionKeyIndex    protowire.Number = 1
	fieldExplicitHashKeyIndex protowire.Number = 2
	fieldData                 protowire.Number = 3
)

// IsAggregated reports whether b starts with Magic, that is, whether it is (or claims to be) an aggregated record.
// It does not check the rest: Deaggregate does.
func IsAggregated(b []byte) bool {
	return len(b) >= len(Magic) && string(b[:len(Magic)]) == Magic
}

// Deaggregate returns the user records of the aggregated record b, in order (a user record's index is its
// sub-sequence number). The records' Data are slices of b. It returns ErrNotAggregated for a record without Magic,
// ErrChecksum for a checksum mismatch and ErrMalformed for an invalid message, each possibly wrapped with details.
// A valid aggregate of no user records gives none and no error.
func Deaggregate(b []byte) ([]UserRecord, error) {
	if !IsAggregated(b) {
		return nil, ErrNotAggregated
	}
	if len(b) < len(Magic)+checksumSize {
		return nil, fmt.Errorf("%w: truncated: %d bytes, the magic prefix and checksum alone take %d", ErrMalformed, len(b), len(Magic)+checksumSize)
	}
	msg := b[len(Magic) : len(b)-checksumSize]
	sum := md5.Sum(msg)
	if !bytes.Equal(sum[:], b[len(b)-checksumSize:]) {
		return nil, ErrChecksum
	}

	// Fields may come in any order: collect the tables and the records' bytes, then resolve the indexes.
	var pkTable, ehkTable []string
	var recs [][]byte
	for rest := msg; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return nil, malformed("aggregated record", protowire.ParseError(n))
		}
		rest = rest[n:]
		switch {
		case num == fieldPartitionKeyTable && typ == protowire.BytesType:
			s, n := protowire.ConsumeString(rest)
			if n < 0 {
				return nil, malformed("partition key table", protowire.ParseError(n))
			}
			pkTable, rest = append(pkTable, s), rest[n:]
		case num == fieldExplicitHashKeyTable && typ == protowire.BytesType:
			s, n := protowire.ConsumeString(rest)
			if n < 0 {
				return nil, malformed("explicit hash key table", protowire.ParseError(n))
			}
			ehkTable, rest = append(ehkTable, s), rest[n:]
		case num == fieldRecords && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(rest)
			if n < 0 {
				return nil, malformed(fmt.Sprintf("record %d", len(recs)), protowire.ParseError(n))
			}
			recs, rest = append(recs, v), rest[n:]
		case num == fieldPartitionKeyTable || num == fieldExplicitHashKeyTable || num == fieldRecords:
			return nil, fmt.Errorf("%w: field %d has wire type %d, want %d (length-delimited)", ErrMalformed, num, typ, protowire.BytesType)
		default:
			n := protowire.ConsumeFieldValue(num, typ, rest)
			if n < 0 {
				return nil, malformed(fmt.Sprintf("unknown field %d", num), protowire.ParseError(n))
			}
			rest = rest[n:]
		}
	}

	if len(recs) == 0 {
		return nil, nil
	}
	out := make([]UserRecord, len(recs))
	for i, rec := range recs {
		if err := decodeRecord(rec, pkTable, ehkTable, &out[i]); err != nil {
			return nil, fmt.Errorf("%w: record %d: %w", ErrMalformed, i, err)
		}
	}
	return out, nil
}

// decodeRecord decodes one Record message into ur, resolving its indexes in the tables.
func decodeRecord(b []byte, pkTable, ehkTable []string, ur *UserRecord) error {
	var pki, ehki uint64
	var hasPK, hasEHK, hasData bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		want := protowire.VarintType
		switch num {
		case fieldPartitionKeyIndex, fieldExplicitHashKeyIndex:
		case fieldData:
			want = protowire.BytesType
		default:
			n := protowire.ConsumeFieldValue(num, typ, b) // tags and unknown fields
			if n < 0 {
				return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		if typ != want {
			return fmt.Errorf("field %d has wire type %d, want %d", num, typ, want)
		}
		switch num {
		case fieldPartitionKeyIndex, fieldExplicitHashKeyIndex:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			if num == fieldPartitionKeyIndex {
				pki, hasPK = v, true
			} else {
				ehki, hasEHK = v, true
			}
		default: // fieldData
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("data: %w", protowire.ParseError(n))
			}
			b = b[n:]
			ur.Data, hasData = v, true
		}
	}
	switch {
	case !hasPK:
		return errors.New("no partition key index (a required field)")
	case !hasData:
		return errors.New("no data (a required field)")
	case pki >= uint64(len(pkTable)):
		return fmt.Errorf("partition key index %d is outside the table of %d", pki, len(pkTable))
	case hasEHK && ehki >= uint64(len(ehkTable)):
		return fmt.Errorf("explicit hash key index %d is outside the table of %d", ehki, len(ehkTable))
	}
	ur.PartitionKey = pkTable[pki]
	if hasEHK {
		ur.ExplicitHashKey = ehkTable[ehki]
	}
	return nil
}

func malformed(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrMalformed, what, err)
}

// Aggregate returns the aggregated record holding records, in order, with each distinct partition key and explicit
// hash key stored once in its table (a user record without an explicit hash key has no index). It does not split
// or limit sizes: Kinesis accepts records up to the stream's maximum record size (1 MiB by default), and the KPL
// keeps its aggregates under that.
func Aggregate(records []UserRecord) []byte {
	var pkTable, ehkTable []string
	pkIndex, ehkIndex := map[string]uint64{}, map[string]uint64{}
	type ref struct {
		pk, ehk uint64
		hasEHK  bool
	}
	refs := make([]ref, len(records))
	size := 0
	for i, r := range records {
		pk, ok := pkIndex[r.PartitionKey]
		if !ok {
			pk = uint64(len(pkTable))
			pkIndex[r.PartitionKey] = pk
			pkTable = append(pkTable, r.PartitionKey)
			size += 1 + protowire.SizeBytes(len(r.PartitionKey))
		}
		refs[i].pk = pk
		if r.ExplicitHashKey != "" {
			ehk, ok := ehkIndex[r.ExplicitHashKey]
			if !ok {
				ehk = uint64(len(ehkTable))
				ehkIndex[r.ExplicitHashKey] = ehk
				ehkTable = append(ehkTable, r.ExplicitHashKey)
				size += 1 + protowire.SizeBytes(len(r.ExplicitHashKey))
			}
			refs[i].ehk, refs[i].hasEHK = ehk, true
		}
		size += 1 + protowire.SizeBytes(recordSize(refs[i].pk, refs[i].ehk, refs[i].hasEHK, len(r.Data)))
	}

	b := make([]byte, 0, len(Magic)+size+checksumSize)
	b = append(b, Magic...)
	for _, pk := range pkTable {
		b = protowire.AppendTag(b, fieldPartitionKeyTable, protowire.BytesType)
		b = protowire.AppendString(b, pk)
	}
	for _, ehk := range ehkTable {
		b = protowire.AppendTag(b, fieldExplicitHashKeyTable, protowire.BytesType)
		b = protowire.AppendString(b, ehk)
	}
	for i, r := range records {
		ref := refs[i]
		b = protowire.AppendTag(b, fieldRecords, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(recordSize(ref.pk, ref.ehk, ref.hasEHK, len(r.Data))))
		b = protowire.AppendTag(b, fieldPartitionKeyIndex, protowire.VarintType)
		b = protowire.AppendVarint(b, ref.pk)
		if ref.hasEHK {
			b = protowire.AppendTag(b, fieldExplicitHashKeyIndex, protowire.VarintType)
			b = protowire.AppendVarint(b, ref.ehk)
		}
		b = protowire.AppendTag(b, fieldData, protowire.BytesType)
		b = protowire.AppendBytes(b, r.Data)
	}
	sum := md5.Sum(b[len(Magic):])
	return append(b, sum[:]...)
}

// recordSize is the encoded size of a Record message's fields.
func recordSize(pk, ehk uint64, hasEHK bool, dataLen int) int {
	n := 1 + protowire.SizeVarint(pk) + 1 + protowire.SizeBytes(dataLen)
	if hasEHK {
		n += 1 + protowire.SizeVarint(ehk)
	}
	return n
}
