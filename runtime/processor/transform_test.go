package processor

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }

// TestSeedRecord: the default item is the payload's attributes, the event-id key and the arrival time, nothing
// else (issue 17: no _kpos, no other metadata).
func TestSeedRecord(t *testing.T) {
	db := newFakeDB(map[string][]KeyAttribute{testTable: testKeys(Config{}), testErrorTable: {{Name: "id", Type: AttributeTypeString}}})
	p := newTestProcessor(t, db)
	ev := event(`{"Timestamp": "2024-09-13T23:06:55.934081Z", "Value": 81, "Category": "C"}`)
	resp, err := p.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle = %v, %v", resp, err)
	}
	want := Item{
		"Timestamp":           s("2024-09-13T23:06:55.934081Z"),
		"Value":               n("81"),
		"Category":            s("C"),
		"id":                  s(testShard + ":" + seq(0)),
		"_kinesisArrivalTime": s("2024-09-13T23:06:56.123Z"), // the default metadata; the key names the position
	}
	if len(db.tables[testTable]) != 1 {
		t.Fatalf("data table holds %d items, want 1", len(db.tables[testTable]))
	}
	for _, got := range db.tables[testTable] {
		if !reflect.DeepEqual(got, want) {
			t.Errorf("item\n%#v\nwant\n%#v", got, want)
		}
	}
}

func TestDefaultTransform(t *testing.T) {
	rec := func(payload string) *Record {
		data, err := decodeObject([]byte(payload))
		if err != nil {
			t.Fatalf("decode %s: %v", payload, err)
		}
		return &Record{EventID: "shard-1:7", ShardID: "shard-1", SequenceNumber: "7", PartitionKey: "p", ArrivalTime: time.UnixMilli(1726268816123), Raw: []byte(payload), Data: data}
	}
	tests := []struct {
		name    string
		cfg     Config
		give    string
		want    Item // attributes to check (metadata is checked elsewhere)
		wantErr string
	}{
		{
			name: "exact numbers, nesting, null, bool",
			give: `{"big": 123456789012345678901234567890.123456789, "neg": -1.5e-7, "m": {"l": [1, "x", null, true, {"k": []}]}, "z": null, "b": false}`,
			want: Item{
				"big": n("123456789012345678901234567890.123456789"),
				"neg": n("-1.5e-7"),
				"m": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"l": &types.AttributeValueMemberL{Value: []types.AttributeValue{
					n("1"), s("x"), &types.AttributeValueMemberNULL{Value: true}, &types.AttributeValueMemberBOOL{Value: true},
					&types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"k": &types.AttributeValueMemberL{Value: []types.AttributeValue{}}}},
				}}}},
				"z":  &types.AttributeValueMemberNULL{Value: true},
				"b":  &types.AttributeValueMemberBOOL{Value: false},
				"id": s("shard-1:7"),
			},
		},
		{
			name: "payload id is replaced by the key",
			give: `{"id": "mine"}`,
			want: Item{"id": s("shard-1:7")},
		},
		{
			name: "nested path keys",
			cfg: Config{
				PartitionKey: KeyAttribute{Name: "pk", Type: AttributeTypeString, Source: "order.customer"},
				SortKey:      &KeyAttribute{Name: "sk", Type: AttributeTypeNumber, Source: "order.n"},
			},
			give: `{"order": {"customer": "c1", "n": 3}}`,
			want: Item{"pk": s("c1"), "sk": n("3")},
		},
		{
			name: "metadata sources",
			cfg: Config{
				PartitionKey: KeyAttribute{Name: "pk", Type: AttributeTypeString, Source: SourceShardID},
				SortKey:      &KeyAttribute{Name: "sk", Type: AttributeTypeNumber, Source: SourceArrivalTime},
			},
			give: `{}`,
			want: Item{"pk": s("shard-1"), "sk": n("1726268816123")},
		},
		{
			name: "binary key from base64",
			cfg:  Config{PartitionKey: KeyAttribute{Name: "pk", Type: AttributeTypeBinary, Source: "b"}},
			give: `{"b": "aGk="}`,
			want: Item{"pk": &types.AttributeValueMemberB{Value: []byte("hi")}},
		},
		{name: "missing key", cfg: Config{PartitionKey: KeyAttribute{Name: "pk", Source: "a.b"}}, give: `{"a": {}}`, wantErr: "key attribute pk: payload field a.b is missing"},
		{name: "key under a non-object", cfg: Config{PartitionKey: KeyAttribute{Name: "pk", Source: "a.b"}}, give: `{"a": 1}`, wantErr: "is missing (b is not an object)"},
		{name: "empty key", cfg: Config{PartitionKey: KeyAttribute{Name: "pk", Source: "a"}}, give: `{"a": ""}`, wantErr: "payload field a is empty"},
		{name: "number for a string key", cfg: Config{PartitionKey: KeyAttribute{Name: "pk", Source: "a"}}, give: `{"a": 1}`, wantErr: "is a number, want a string"},
		{name: "string for a number key", cfg: Config{PartitionKey: KeyAttribute{Name: "pk", Type: AttributeTypeNumber, Source: "a"}}, give: `{"a": "1"}`, wantErr: "is a string, want a number"},
		{name: "bad base64", cfg: Config{PartitionKey: KeyAttribute{Name: "pk", Type: AttributeTypeBinary, Source: "a"}}, give: `{"a": "!"}`, wantErr: "not base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, err := DefaultTransform(tt.cfg)(context.Background(), rec(tt.give))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !IsPermanent(err) {
					t.Fatalf("err = %v, want a permanent error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(items) != 1 {
				t.Fatalf("got %d items, %v", len(items), err)
			}
			for k, w := range tt.want {
				if !reflect.DeepEqual(items[0][k], w) {
					t.Errorf("%s = %#v, want %#v", k, items[0][k], w)
				}
			}
		})
	}
}

func TestDecodeObject(t *testing.T) {
	tests := []struct {
		give    string
		wantErr string
	}{
		{give: `{"a":1}`},
		{give: " \n{\"a\":1}\n "},
		{give: `{"a":1} x`, wantErr: "data after its JSON value"},
		{give: `{"a":1}{}`, wantErr: "data after its JSON value"},
		{give: `null`, wantErr: "JSON null"},
		{give: `[]`, wantErr: "JSON array"},
		{give: `"x"`, wantErr: "JSON string"},
		{give: `-1.5`, wantErr: "JSON number"},
		{give: `false`, wantErr: "JSON boolean"},
		{give: ``, wantErr: "empty"},
		{give: `{"a":`, wantErr: "not valid JSON"},
		{give: `{"a":1,}`, wantErr: "not valid JSON"},
		{give: "{\"a\":\"\xc3\x28\"}", wantErr: "not valid UTF-8"},
	}
	for _, tt := range tests {
		_, err := decodeObject([]byte(tt.give))
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("decodeObject(%q) = %v, want %q", tt.give, err, tt.wantErr)
		}
	}
}

func TestCheckNumber(t *testing.T) {
	tests := []struct {
		give    string
		wantErr string
		wantKey string
	}{
		{give: "0", wantKey: "0"},
		{give: "-0.000e-999999999999", wantKey: "0"},
		{give: "81", wantKey: "81e1"},
		{give: "100", wantKey: "1e2"},
		{give: "1.00", wantKey: "1e0"},
		{give: "0.0105", wantKey: "105e-2"},
		{give: "-12.5e3", wantKey: "-125e4"},
		{give: "10e-1", wantKey: "1e0"},
		{give: ".5", wantKey: "5e-1"},
		{give: "5.", wantKey: "5e0"},
		{give: "12345678901234567890123456789012345678", wantKey: "12345678901234567890123456789012345678e37"},
		{give: "123456789012345678901234567890123456780000"},
		{give: "0.000123456789012345678901234567890123456780"},
		{give: "9.9999999999999999999999999999999999999E+125"},
		{give: "1E-130"},
		{give: "123456789012345678901234567890123456789", wantErr: "39 significant digits"},
		{give: "1.23456789012345678901234567890123456789", wantErr: "39 significant digits"},
		{give: "1E+126", wantErr: "larger in magnitude"},
		{give: "10E+125", wantErr: "larger in magnitude"},
		{give: "0.1E-130", wantErr: "smaller in magnitude"},
		{give: "1e999999999999999", wantErr: "larger in magnitude"},
		{give: "", wantErr: "not a number"},
		{give: "-", wantErr: "not a number"},
		{give: "1e", wantErr: "not a number"},
		{give: "1x", wantErr: "not a number"},
		{give: "NaN", wantErr: "not a number"},
		{give: "1..2", wantErr: "not a number"},
	}
	for _, tt := range tests {
		num, err := checkNumber(tt.give)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("checkNumber(%q) = %v, want %q", tt.give, err, tt.wantErr)
			continue
		}
		if tt.wantKey != "" && num.canonical() != tt.wantKey {
			t.Errorf("canonical(%q) = %q, want %q", tt.give, num.canonical(), tt.wantKey)
		}
	}
}

func TestValidateItem(t *testing.T) {
	keys := []KeyAttribute{{Name: "pk", Type: AttributeTypeString}, {Name: "sk", Type: AttributeTypeNumber}}
	ok := func(extra Item) Item {
		it := Item{"pk": s("a"), "sk": n("1")}
		for k, v := range extra {
			it[k] = v
		}
		return it
	}
	tests := []struct {
		name    string
		give    Item
		wantErr string
	}{
		{name: "ok", give: ok(nil)},
		{name: "missing partition key", give: Item{"sk": n("1")}, wantErr: "partition key pk: is missing"},
		{name: "empty partition key", give: Item{"pk": s(""), "sk": n("1")}, wantErr: "partition key pk: is empty"},
		{name: "wrong key type", give: Item{"pk": s("a"), "sk": s("1")}, wantErr: "sort key sk: is S, want N"},
		{name: "long partition key", give: Item{"pk": s(strings.Repeat("x", 2049)), "sk": n("1")}, wantErr: "more than 2048"},
		{name: "nil value", give: Item{"pk": s("a"), "sk": n("1"), "x": nil}, wantErr: "has no value"},
		{name: "empty set", give: ok(Item{"ss": &types.AttributeValueMemberSS{}}), wantErr: "string set is empty"},
		{name: "duplicate numbers", give: ok(Item{"ns": &types.AttributeValueMemberNS{Value: []string{"1", "1.0"}}}), wantErr: "duplicates"},
		{name: "bad number in a list", give: ok(Item{"l": &types.AttributeValueMemberL{Value: []types.AttributeValue{n("1"), n("1e200")}}}), wantErr: "attribute l[1]: number is larger in magnitude than 9.9999999999999999999999999999999999999E+125 (value 1e200)"},
		{name: "too big", give: ok(Item{"b": &types.AttributeValueMemberB{Value: make([]byte, MaxItemSize)}}), wantErr: "more than DynamoDB's"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateItem(tt.give, keys)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("validateItem = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestErrorItem(t *testing.T) {
	incompressible := make([]byte, 600*1024)
	x := uint32(1)
	for i := range incompressible { // xorshift: no pattern for gzip to find
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		incompressible[i] = byte(x)
	}
	tests := []struct {
		name         string
		give         []byte
		wantEncoding string
	}{
		{name: "small", give: []byte("not json"), wantEncoding: PayloadEncodingRaw},
		{name: "compressible", give: bytes.Repeat([]byte("a"), 900*1024), wantEncoding: PayloadEncodingGzip},
		{name: "incompressible", give: incompressible, wantEncoding: PayloadEncodingParts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestProcessor(t, newFakeDB(nil), func(o *Options) { o.Config.ErrorTTLSeconds = 3600 })
			r := &Record{EventID: "s:1", ShardID: "s", SequenceNumber: "1", PartitionKey: "p", ArrivalTime: testArrival, Raw: tt.give}
			items := p.errorItems(context.Background(), r, Permanent(io.ErrUnexpectedEOF))
			for _, it := range items {
				if err := validateItem(it, []KeyAttribute{{Name: ErrorTablePartitionKey, Type: AttributeTypeString}}); err != nil {
					t.Fatalf("error item is invalid: %v", err)
				}
			}
			it := items[0]
			if got := it[ErrorAttrPayloadEncoding].(*types.AttributeValueMemberS).Value; got != tt.wantEncoding {
				t.Fatalf("encoding %s, want %s", got, tt.wantEncoding)
			}
			if tt.wantEncoding != PayloadEncodingParts && len(items) != 1 {
				t.Fatalf("%d items, want 1", len(items))
			}
			var payload []byte
			if b, ok := it[ErrorAttrPayload].(*types.AttributeValueMemberB); ok {
				payload = b.Value
			}
			switch tt.wantEncoding {
			case PayloadEncodingRaw:
				if !bytes.Equal(payload, tt.give) {
					t.Errorf("payload %q", payload)
				}
			case PayloadEncodingGzip:
				zr, err := gzip.NewReader(bytes.NewReader(payload))
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(zr)
				if !bytes.Equal(got, tt.give) {
					t.Errorf("gunzipped payload differs")
				}
			case PayloadEncodingParts:
				if len(payload) != 0 {
					t.Errorf("error item holds %d payload bytes, want none", len(payload))
				}
				checkParts(t, items, tt.give, "s:1", n("1726275600"))
			}
			wantFixed := Item{
				ErrorTablePartitionKey:    s("s:1"),
				ErrorAttrShardID:          s("s"),
				ErrorAttrSequenceNumber:   s("1"),
				ErrorAttrPartitionKey:     s("p"),
				ErrorAttrArrivalTime:      s("2024-09-13T23:06:56.123Z"),
				ErrorAttrReason:           s("unexpected EOF"),
				ErrorAttrProcessorVersion: s(Version),
				ErrorAttrFailedAt:         s("2024-09-14T00:00:00Z"),
				ErrorTTLAttribute:         n("1726275600"),
				ErrorAttrPayloadSize:      n(itoa(len(tt.give))),
			}
			for k, w := range wantFixed {
				if !reflect.DeepEqual(it[k], w) {
					t.Errorf("%s = %#v, want %#v", k, it[k], w)
				}
			}
		})
	}
}

// checkParts checks that items are an error item (id id) storing payload in parts and its part items, in order; ttl
// is the TTL attribute the parts must have (nil for none).
func checkParts(t *testing.T, items []Item, payload []byte, id string, ttl types.AttributeValue) {
	t.Helper()
	nparts := (len(payload) + MaxErrorPayload - 1) / MaxErrorPayload
	sum := sha256.Sum256(payload)
	for attr, want := range map[string]types.AttributeValue{
		ErrorAttrPayloadEncoding: s(PayloadEncodingParts),
		ErrorAttrPayloadSize:     n(itoa(len(payload))),
		ErrorAttrPayloadSHA256:   s(hex.EncodeToString(sum[:])),
		ErrorAttrPayloadParts:    n(itoa(nparts)),
	} {
		if got := items[0][attr]; !reflect.DeepEqual(got, want) {
			t.Errorf("error item: %s = %#v, want %#v", attr, got, want)
		}
	}
	if len(items) != nparts+1 {
		t.Fatalf("%d items, want the error item and %d parts", len(items), nparts)
	}
	var whole []byte
	for k, part := range items[1:] {
		b, _ := part[ErrorAttrPayload].(*types.AttributeValueMemberB)
		if b == nil || len(b.Value) > MaxErrorPayload {
			t.Fatalf("part %d: payload %#v", k+1, part[ErrorAttrPayload])
		}
		whole = append(whole, b.Value...)
		want := Item{
			ErrorTablePartitionKey: s(ErrorPartID(id, k+1)),
			ErrorAttrPartOf:        s(id),
			ErrorAttrPart:          n(itoa(k + 1)),
			ErrorAttrPayload:       b,
		}
		if ttl != nil {
			want[ErrorTTLAttribute] = ttl
		}
		if !reflect.DeepEqual(part, want) {
			t.Errorf("part %d has attributes %v, want %v", k+1, sortedAttrs(part), sortedAttrs(want))
		}
	}
	if got := sha256.Sum256(whole); !bytes.Equal(whole, payload) || got != sum {
		t.Errorf("the parts hold %d bytes that differ from the payload's %d", len(whole), len(payload))
	}
}

func sortedAttrs(it Item) []string {
	out := make([]string, 0, len(it))
	for k, v := range it {
		out = append(out, fmt.Sprintf("%s=%v", k, v))
	}
	slices.Sort(out)
	return out
}
