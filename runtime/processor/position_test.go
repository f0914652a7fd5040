package processor

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// wantPosition builds a position as EncodePosition's documentation describes it, by schoolbook base-256 division of
// the decimal digits (independent of the processor's math/big conversion).
func wantPosition(shard, seq string, sub uint32) []byte {
	digits := []byte(strings.TrimLeft(seq, "0"))
	for i := range digits {
		digits[i] -= '0'
	}
	var mag []byte // little-endian while building
	for len(digits) > 0 {
		var q []byte
		rem := 0
		for _, d := range digits {
			cur := rem*10 + int(d)
			if len(q) > 0 || cur/256 > 0 {
				q = append(q, byte(cur/256))
			}
			rem = cur % 256
		}
		mag = append(mag, byte(rem))
		digits = q
	}
	out := []byte{byte(len(shard))}
	out = append(out, shard...)
	out = append(out, byte(len(mag)))
	for i := len(mag) - 1; i >= 0; i-- {
		out = append(out, mag[i])
	}
	return append(out, byte(sub>>24), byte(sub>>16), byte(sub>>8), byte(sub))
}

func TestEncodePosition(t *testing.T) {
	tests := []struct {
		name    string
		shard   string
		seq     string
		sub     int
		want    []byte
		wantErr string
	}{
		{name: "small", shard: "s", seq: "258", sub: 1, want: []byte{1, 's', 2, 1, 2, 0, 0, 0, 1}},
		{name: "zero", shard: "s", seq: "0", want: []byte{1, 's', 0, 0, 0, 0, 0}},
		{name: "leading zeros", shard: "s", seq: "00258", want: []byte{1, 's', 2, 1, 2, 0, 0, 0, 0}},
		{name: "kinesis", shard: testShard, seq: seq(0), sub: 7, want: wantPosition(testShard, seq(0), 7)},
		{name: "129 digits", shard: testShard, seq: strings.Repeat("9", 129), sub: 1<<32 - 1, want: wantPosition(testShard, strings.Repeat("9", 129), 1<<32-1)},
		{name: "no shard", shard: "", seq: "1", wantErr: "shard id is empty"},
		{name: "long shard", shard: strings.Repeat("s", 256), seq: "1", wantErr: "more than 255"},
		{name: "no sequence number", shard: "s", seq: "", wantErr: "sequence number is empty"},
		{name: "not decimal", shard: "s", seq: "12a", wantErr: "not a decimal number"},
		{name: "sign", shard: "s", seq: "-1", wantErr: "not a decimal number"},
		{name: "non-ASCII digit", shard: "s", seq: "1٣", wantErr: "not a decimal number"},
		{name: "too many digits", shard: "s", seq: strings.Repeat("1", 256), wantErr: "more than 255"},
		{name: "negative sub", shard: "s", seq: "1", sub: -1, wantErr: "outside"},
		{name: "sub too large", shard: "s", seq: "1", sub: 1 << 32, wantErr: "outside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodePosition(tt.shard, tt.seq, tt.sub)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("EncodePosition = %x, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("EncodePosition = %x, %v; want %x", got, err, tt.want)
			}
			shard, sq, sub, err := DecodePosition(got)
			wantSeq := strings.TrimLeft(tt.seq, "0")
			if wantSeq == "" {
				wantSeq = "0"
			}
			if err != nil || shard != tt.shard || sq != wantSeq || sub != tt.sub {
				t.Errorf("DecodePosition = %q, %q, %d, %v", shard, sq, sub, err)
			}
		})
	}
}

func TestDecodePositionRejects(t *testing.T) {
	for _, b := range [][]byte{nil, {}, {0, 0, 0, 0, 0, 0}, {1, 's'}, {1, 's', 1, 5, 0, 0, 0}, {1, 's', 1, 5, 0, 0, 0, 0, 0}, {1, 's', 1, 0, 0, 0, 0, 0}} {
		if s, q, n, err := DecodePosition(b); err == nil {
			t.Errorf("DecodePosition(%x) = %q, %q, %d, nil; want an error", b, s, q, n)
		}
	}
}

// TestPositionOrder: positions of one shard compare byte-wise as Kinesis orders the records (sequence numbers by
// length then lexically, then sub-sequence numbers); positions of different shards never share a shard prefix.
func TestPositionOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randSeq := func() string {
		n := 1 + rng.IntN(60)
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + rng.IntN(10))
		}
		b[0] = byte('1' + rng.IntN(9))
		if rng.IntN(4) == 0 {
			return strconv.Itoa(rng.IntN(300))
		}
		return string(b)
	}
	cmp := func(a, b int) int {
		switch {
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return 0
	}
	for range 5000 {
		sa, sb := randSeq(), randSeq()
		if rng.IntN(5) == 0 {
			sb = sa
		}
		ua, ub := rng.IntN(3), rng.IntN(3)
		pa, err := EncodePosition(testShard, sa, ua)
		if err != nil {
			t.Fatal(err)
		}
		pb, err := EncodePosition(testShard, sb, ub)
		if err != nil {
			t.Fatal(err)
		}
		want := cmp(len(sa), len(sb))
		if want == 0 {
			want = strings.Compare(sa, sb)
		}
		if want == 0 {
			want = cmp(ua, ub)
		}
		if got := bytes.Compare(pa, pb); got != want {
			t.Fatalf("compare(%s#%d, %s#%d) = %d, want %d", sa, ua, sb, ub, got, want)
		}
	}
	for _, pair := range [][2]string{{"shardId-1", "shardId-10"}, {"a", "ab"}, {"shardId-000000000001", "shardId-000000000002"}} {
		pa, _ := EncodePosition(pair[0], "5", 0)
		prefixB, err := PositionShardPrefix(pair[1])
		if err != nil {
			t.Fatal(err)
		}
		if bytes.HasPrefix(pa, prefixB) {
			t.Errorf("a position of %s starts with %s's prefix", pair[0], pair[1])
		}
	}
}

// TestUnverifiedPosition: marking a position unverified puts a 0 byte first (no verified position starts with one),
// is idempotent, decodes to the same record, and names the same record as the verified position.
func TestUnverifiedPosition(t *testing.T) {
	p, err := EncodePosition("shardId-000000000002", "49590000000000000000000000000000000000000000000000000007", 3)
	if err != nil {
		t.Fatal(err)
	}
	u := UnverifiedPosition(p)
	if PositionUnverified(p) || !PositionUnverified(u) || u[0] != 0 || !bytes.Equal(u[1:], p) {
		t.Fatalf("UnverifiedPosition(%x) = %x", p, u)
	}
	if again := UnverifiedPosition(u); !bytes.Equal(again, u) {
		t.Errorf("marked twice: %x, want %x", again, u)
	}
	shard, seq, sub, err := DecodePosition(u)
	if err != nil || shard != "shardId-000000000002" || seq != "49590000000000000000000000000000000000000000000000000007" || sub != 3 {
		t.Errorf("DecodePosition(unverified) = %q %q %d %v", shard, seq, sub, err)
	}
	other, _ := EncodePosition("shardId-000000000002", "49590000000000000000000000000000000000000000000000000008", 3)
	for _, tt := range []struct {
		a, b []byte
		want bool
	}{{p, u, true}, {u, p, true}, {u, u, true}, {p, other, false}, {u, UnverifiedPosition(other), false}, {nil, nil, false}} {
		if got := samePosition(tt.a, tt.b); got != tt.want {
			t.Errorf("samePosition(%x, %x) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
