package kpl_test

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/kpl"
)

// aggregatedRecordDesc is the format's schema (awslabs/kinesis-aggregation's messages.proto), so the tests can check
// this package against the protobuf library's own encoder and decoder.
var aggregatedRecordDesc = func() protoreflect.MessageDescriptor {
	s, b, u := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), descriptorpb.FieldDescriptorProto_TYPE_BYTES.Enum(), descriptorpb.FieldDescriptorProto_TYPE_UINT64.Enum()
	msg := descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
	rep, req, opt := descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum(), descriptorpb.FieldDescriptorProto_LABEL_REQUIRED.Enum(), descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	field := func(name string, num int32, label *descriptorpb.FieldDescriptorProto_Label, typ *descriptorpb.FieldDescriptorProto_Type, typeName string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(num), Label: label, Type: typ}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		return f
	}
	fd := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("messages.proto"),
		Package: proto.String("test"),
		Syntax:  proto.String("proto2"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("AggregatedRecord"), Field: []*descriptorpb.FieldDescriptorProto{
				field("partition_key_table", 1, rep, s, ""),
				field("explicit_hash_key_table", 2, rep, s, ""),
				field("records", 3, rep, msg, ".test.Record"),
			}},
			{Name: proto.String("Tag"), Field: []*descriptorpb.FieldDescriptorProto{
				field("key", 1, req, s, ""),
				field("value", 2, opt, s, ""),
			}},
			{Name: proto.String("Record"), Field: []*descriptorpb.FieldDescriptorProto{
				field("partition_key_index", 1, req, u, ""),
				field("explicit_hash_key_index", 2, opt, u, ""),
				field("data", 3, req, b, ""),
				field("tags", 4, rep, msg, ".test.Tag"),
			}},
		},
	}
	f, err := protodesc.NewFile(fd, nil)
	if err != nil {
		panic(err)
	}
	return f.Messages().ByName("AggregatedRecord")
}()

// withChecksum frames a protobuf message as an aggregated record.
func withChecksum(msg []byte) []byte {
	sum := md5.Sum(msg)
	return append(append([]byte(kpl.Magic), msg...), sum[:]...)
}

// libraryDecode decodes an aggregate's message with the protobuf library.
func libraryDecode(t *testing.T, agg []byte) []kpl.UserRecord {
	t.Helper()
	out, err := tryLibraryDecode(agg)
	if err != nil {
		t.Fatalf("protobuf library cannot decode the aggregate: %v", err)
	}
	return out
}

// tryLibraryDecode decodes an aggregate's message with the protobuf library; tags may lack their required key
// (this package does not read tags). An index outside its table is an error.
func tryLibraryDecode(agg []byte) (out []kpl.UserRecord, err error) {
	m := dynamicpb.NewMessage(aggregatedRecordDesc)
	if err := (proto.UnmarshalOptions{AllowPartial: true}).Unmarshal(agg[len(kpl.Magic):len(agg)-md5.Size], m); err != nil {
		return nil, err
	}
	defer func() {
		if v := recover(); v != nil { // a list index out of range
			out, err = nil, fmt.Errorf("%v", v)
		}
	}()
	fields := aggregatedRecordDesc.Fields()
	pks, ehks := m.Get(fields.ByNumber(1)).List(), m.Get(fields.ByNumber(2)).List()
	recs := m.Get(fields.ByNumber(3)).List()
	for i := range recs.Len() {
		r := recs.Get(i).Message()
		rf := r.Descriptor().Fields()
		ur := kpl.UserRecord{PartitionKey: pks.Get(int(r.Get(rf.ByNumber(1)).Uint())).String(), Data: r.Get(rf.ByNumber(3)).Bytes()}
		if r.Has(rf.ByNumber(2)) {
			ur.ExplicitHashKey = ehks.Get(int(r.Get(rf.ByNumber(2)).Uint())).String()
		}
		out = append(out, ur)
	}
	return out, nil
}

func equalRecords(a, b []kpl.UserRecord) bool {
	return slices.EqualFunc(a, b, func(x, y kpl.UserRecord) bool {
		return x.PartitionKey == y.PartitionKey && x.ExplicitHashKey == y.ExplicitHashKey && bytes.Equal(x.Data, y.Data)
	})
}

func userRecords(n int) []kpl.UserRecord {
	out := make([]kpl.UserRecord, n)
	for i := range out {
		out[i] = kpl.UserRecord{PartitionKey: fmt.Sprintf("pk-%d", i%7), Data: fmt.Appendf(nil, `{"n": %d}`, i)}
		if i%3 == 0 {
			out[i].ExplicitHashKey = fmt.Sprint(i % 5 * 1000)
		}
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		give []kpl.UserRecord
	}{
		{name: "none", give: nil},
		{name: "one", give: userRecords(1)},
		{name: "two with one partition key", give: []kpl.UserRecord{{PartitionKey: "a", Data: []byte("x")}, {PartitionKey: "a", Data: []byte("y")}}},
		{name: "empty data and empty partition key", give: []kpl.UserRecord{{PartitionKey: "", Data: nil}, {PartitionKey: "k", Data: []byte{}}}},
		{name: "binary data", give: []kpl.UserRecord{{PartitionKey: "b", Data: []byte{0, 0xff, 0xf3, 0x89, 0x9a, 0xc2}}}},
		{name: "500", give: userRecords(500)},
		{name: "large data", give: []kpl.UserRecord{{PartitionKey: "big", Data: bytes.Repeat([]byte("z"), 300_000)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agg := kpl.Aggregate(tt.give)
			if !kpl.IsAggregated(agg) {
				t.Fatal("IsAggregated is false for an aggregate")
			}
			got, err := kpl.Deaggregate(agg)
			if err != nil {
				t.Fatalf("Deaggregate: %v", err)
			}
			if !equalRecords(got, tt.give) {
				t.Errorf("round trip changed the records:\n%+v\nwant\n%+v", got, tt.give)
			}
			if lib := libraryDecode(t, agg); !equalRecords(lib, tt.give) {
				t.Errorf("the protobuf library reads\n%+v\nwant\n%+v", lib, tt.give)
			}
		})
	}
}

// TestLibraryEncoded decodes aggregates the protobuf library encodes, with fields in an unusual order, tags and an
// unknown field, as other producers may write them.
func TestLibraryEncoded(t *testing.T) {
	m := dynamicpb.NewMessage(aggregatedRecordDesc)
	fields := aggregatedRecordDesc.Fields()
	pks := m.Mutable(fields.ByNumber(1)).List()
	pks.Append(protoreflect.ValueOfString("alpha"))
	pks.Append(protoreflect.ValueOfString("beta"))
	m.Mutable(fields.ByNumber(2)).List().Append(protoreflect.ValueOfString("12345"))
	recs := m.Mutable(fields.ByNumber(3)).List()
	for i, spec := range []struct {
		pk   uint64
		ehk  int
		data string
	}{{1, -1, "one"}, {0, 0, "two"}, {1, -1, ""}} {
		r := recs.NewElement().Message()
		rf := r.Descriptor().Fields()
		r.Set(rf.ByNumber(1), protoreflect.ValueOfUint64(spec.pk))
		if spec.ehk >= 0 {
			r.Set(rf.ByNumber(2), protoreflect.ValueOfUint64(uint64(spec.ehk)))
		}
		r.Set(rf.ByNumber(3), protoreflect.ValueOfBytes([]byte(spec.data)))
		tag := r.Mutable(rf.ByNumber(4)).List().NewElement().Message()
		tag.Set(tag.Descriptor().Fields().ByNumber(1), protoreflect.ValueOfString(fmt.Sprint("tag", i)))
		r.Mutable(rf.ByNumber(4)).List().Append(protoreflect.ValueOfMessage(tag))
		recs.Append(protoreflect.ValueOfMessage(r))
	}
	msg, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want := []kpl.UserRecord{{PartitionKey: "beta", Data: []byte("one")}, {PartitionKey: "alpha", ExplicitHashKey: "12345", Data: []byte("two")}, {PartitionKey: "beta", Data: []byte{}}}
	for name, body := range map[string][]byte{
		"as encoded": msg,
		// records first, tables last, and an unknown varint field 15 and fixed64 field 9 in between.
		"reordered": slices.Concat(
			onlyFields(msg, 3), protowire.AppendVarint(protowire.AppendTag(nil, 15, protowire.VarintType), 7),
			protowire.AppendFixed64(protowire.AppendTag(nil, 9, protowire.Fixed64Type), 1), onlyFields(msg, 2), onlyFields(msg, 1)),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := kpl.Deaggregate(withChecksum(body))
			if err != nil {
				t.Fatalf("Deaggregate: %v", err)
			}
			if !equalRecords(got, want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

// onlyFields returns the top-level fields numbered num of a message, encoded.
func onlyFields(msg []byte, num protowire.Number) []byte {
	var out []byte
	for len(msg) > 0 {
		n0, typ, n := protowire.ConsumeTag(msg)
		m := protowire.ConsumeFieldValue(n0, typ, msg[n:])
		if n0 == num {
			out = append(out, msg[:n+m]...)
		}
		msg = msg[n+m:]
	}
	return out
}

func TestDeaggregateErrors(t *testing.T) {
	valid := kpl.Aggregate(userRecords(3))
	rec := func(fields ...[]byte) []byte { // one Record message as field 3 of the aggregate
		return protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), slices.Concat(fields...))
	}
	pkTable := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "pk")
	varint := func(num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
	}
	data := protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), []byte("d"))
	flipped := bytes.Clone(valid)
	flipped[10] ^= 1
	tests := []struct {
		name    string
		give    []byte
		wantErr error
		wantMsg string
	}{
		{name: "plain JSON", give: []byte(`{"a":1}`), wantErr: kpl.ErrNotAggregated},
		{name: "empty", give: nil, wantErr: kpl.ErrNotAggregated},
		{name: "magic prefix cut", give: []byte(kpl.Magic[:3]), wantErr: kpl.ErrNotAggregated},
		{name: "magic only", give: []byte(kpl.Magic), wantErr: kpl.ErrMalformed, wantMsg: "truncated: 4 bytes"},
		{name: "shorter than a checksum", give: valid[:19], wantErr: kpl.ErrMalformed, wantMsg: "truncated"},
		{name: "truncated", give: valid[:len(valid)-5], wantErr: kpl.ErrChecksum},
		{name: "bit flipped", give: flipped, wantErr: kpl.ErrChecksum},
		{name: "trailing byte", give: append(bytes.Clone(valid), 0), wantErr: kpl.ErrChecksum},
		{name: "garbage protobuf", give: withChecksum([]byte{0xff, 0xff, 0xff}), wantErr: kpl.ErrMalformed},
		{name: "record cut short", give: withChecksum(slices.Concat(pkTable, rec(varint(1, 0), data))[:8]), wantErr: kpl.ErrMalformed, wantMsg: "record 0"},
		{name: "table entry with a varint wire type", give: withChecksum(varint(1, 3)), wantErr: kpl.ErrMalformed, wantMsg: "field 1 has wire type 0"},
		{name: "no partition key index", give: withChecksum(slices.Concat(pkTable, rec(data))), wantErr: kpl.ErrMalformed, wantMsg: "no partition key index"},
		{name: "no data", give: withChecksum(slices.Concat(pkTable, rec(varint(1, 0)))), wantErr: kpl.ErrMalformed, wantMsg: "no data"},
		{name: "partition key index out of range", give: withChecksum(slices.Concat(pkTable, rec(varint(1, 1), data))), wantErr: kpl.ErrMalformed, wantMsg: "partition key index 1 is outside the table of 1"},
		{name: "explicit hash key index out of range", give: withChecksum(slices.Concat(pkTable, rec(varint(1, 0), varint(2, 0), data))), wantErr: kpl.ErrMalformed, wantMsg: "explicit hash key index 0 is outside the table of 0"},
		{name: "data with a varint wire type", give: withChecksum(slices.Concat(pkTable, rec(varint(1, 0), varint(3, 1)))), wantErr: kpl.ErrMalformed, wantMsg: "field 3 has wire type 0"},
		{name: "second record bad", give: withChecksum(slices.Concat(pkTable, rec(varint(1, 0), data), rec(varint(1, 9), data))), wantErr: kpl.ErrMalformed, wantMsg: "record 1: partition key index 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := kpl.Deaggregate(tt.give)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Deaggregate = %v, %v; want error %v", got, err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
			if got != nil {
				t.Errorf("records %v returned with an error", got)
			}
		})
	}
}

func TestIsAggregated(t *testing.T) {
	for give, want := range map[string]bool{"": false, "\xf3\x89\x9a": false, kpl.Magic: true, kpl.Magic + "x": true, `{"a":1}`: false, "\xf3\x89\x9a\xc3": false} {
		if got := kpl.IsAggregated([]byte(give)); got != want {
			t.Errorf("IsAggregated(%q) = %v, want %v", give, got, want)
		}
	}
}

// FuzzDeaggregate checks that Deaggregate never panics, on arbitrary bytes and on arbitrary protobuf bodies framed
// with a valid checksum; that whatever it accepts round-trips through Aggregate and matches the protobuf library's
// reading; that records built from the input round-trip; and that truncating or corrupting an aggregate is caught.
func FuzzDeaggregate(f *testing.F) {
	f.Add([]byte(`{"a":1}`), byte(0))
	f.Add(kpl.Aggregate(nil), byte(1))
	f.Add(kpl.Aggregate(userRecords(1)), byte(2))
	f.Add(kpl.Aggregate(userRecords(2)), byte(3))
	f.Add(kpl.Aggregate(userRecords(20)), byte(7))
	body := kpl.Aggregate(userRecords(3))
	f.Add(body[4:len(body)-16], byte(5))
	f.Add([]byte{0x1a, 0x02, 0x08, 0x00}, byte(9))
	f.Fuzz(func(t *testing.T, in []byte, mode byte) {
		// Arbitrary bytes, as they are and framed as an aggregate with a valid checksum.
		for _, b := range [][]byte{in, withChecksum(in)} {
			got, err := kpl.Deaggregate(b)
			if err != nil {
				if !errors.Is(err, kpl.ErrNotAggregated) && !errors.Is(err, kpl.ErrChecksum) && !errors.Is(err, kpl.ErrMalformed) {
					t.Fatalf("error %v is none of the package's errors", err)
				}
				if got != nil {
					t.Fatalf("records returned with error %v", err)
				}
				continue
			}
			again, err := kpl.Deaggregate(kpl.Aggregate(got))
			if err != nil || !equalRecords(again, got) {
				t.Fatalf("accepted records do not round-trip: %v\n%+v\n%+v", err, again, got)
			}
			// Where the protobuf library reads it too (it is laxer about wire types, stricter about tags), both agree.
			if lib, err := tryLibraryDecode(b); err == nil && !equalRecords(lib, got) {
				t.Fatalf("the protobuf library reads\n%+v\nDeaggregate\n%+v", lib, got)
			}
		}

		// Records built from the input: split it into data at every byte equal to mode, keys from the pieces.
		var recs []kpl.UserRecord
		for i, piece := range bytes.Split(in, []byte{mode}) {
			r := kpl.UserRecord{PartitionKey: string(piece[:min(len(piece), 3)]), Data: piece}
			if i%2 == 1 {
				r.ExplicitHashKey = fmt.Sprint(len(piece))
			}
			recs = append(recs, r)
		}
		agg := kpl.Aggregate(recs)
		got, err := kpl.Deaggregate(agg)
		if err != nil || !equalRecords(got, recs) {
			t.Fatalf("built records do not round-trip: %v\n%+v\n%+v", err, got, recs)
		}
		if lib := libraryDecode(t, agg); !equalRecords(lib, recs) {
			t.Fatalf("the protobuf library reads\n%+v\nwant\n%+v", lib, recs)
		}
		cut := int(mode) % len(agg)
		if _, err := kpl.Deaggregate(agg[:cut]); err == nil {
			t.Fatalf("an aggregate cut to %d of %d bytes was accepted", cut, len(agg))
		}
		bad := bytes.Clone(agg)
		bad[cut] ^= 1 << (mode % 8)
		if _, err := kpl.Deaggregate(bad); err == nil {
			t.Fatalf("an aggregate with byte %d corrupted was accepted", cut)
		}
	})
}

func BenchmarkDeaggregate(b *testing.B) {
	agg := kpl.Aggregate(userRecords(500))
	b.SetBytes(int64(len(agg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kpl.Deaggregate(agg); err != nil {
			b.Fatal(err)
		}
	}
}
