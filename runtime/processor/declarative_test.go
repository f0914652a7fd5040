package processor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// render writes an attribute value compactly: S:x, N:1, BOOL:true, NULL, B:<len>, M{k:v,...} (sorted), L[v,...].
func render(av types.AttributeValue) string {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return "S:" + v.Value
	case *types.AttributeValueMemberN:
		return "N:" + v.Value
	case *types.AttributeValueMemberBOOL:
		return fmt.Sprintf("BOOL:%v", v.Value)
	case *types.AttributeValueMemberNULL:
		return "NULL"
	case *types.AttributeValueMemberB:
		return fmt.Sprintf("B:%d", len(v.Value))
	case *types.AttributeValueMemberM:
		var parts []string
		for k, e := range v.Value {
			parts = append(parts, k+":"+render(e))
		}
		slices.Sort(parts)
		return "M{" + strings.Join(parts, ",") + "}"
	case *types.AttributeValueMemberL:
		parts := make([]string, len(v.Value))
		for i, e := range v.Value {
			parts[i] = render(e)
		}
		return "L[" + strings.Join(parts, ",") + "]"
	}
	return fmt.Sprintf("%T", av)
}

func renderItem(it Item) map[string]string {
	out := make(map[string]string, len(it))
	for k, v := range it {
		out[k] = render(v)
	}
	return out
}

// declResult is what a batch through Handle left behind.
type declResult struct {
	items    []map[string]string // data table items, in sequence-number order
	reasons  []string            // error table reasons, in sequence-number order
	skipped  int
	failures []string // batch item failures
}

// runDeclarative processes payloads (records 0, 1, ...) through Handle with cfg, as in production.
func runDeclarative(t *testing.T, cfg Config, payloads ...string) declResult {
	t.Helper()
	db := newFakeDB(map[string][]KeyAttribute{testTable: testKeys(cfg), testErrorTable: {{Name: "id", Type: AttributeTypeString}}})
	p := newTestProcessor(t, db, func(o *Options) { o.Config = cfg })
	resp, err := p.Handle(context.Background(), event(payloads...))
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	var res declResult
	for _, f := range resp.BatchItemFailures {
		res.failures = append(res.failures, f.ItemIdentifier)
	}
	for i := range payloads {
		stored := 0
		for _, it := range db.tables[testTable] {
			// Under an event-id key the item's key names its position and it carries no AttrPosition; under any
			// other key it carries AttrPosition.
			_, hasPos := it[AttrPosition]
			if derived := cfg.WithDefaults().PartitionKey.Source == SourceEventID; hasPos == derived {
				t.Fatalf("data item has %s: %v, want %v: %v", AttrPosition, hasPos, !derived, renderItem(it))
			}
			pos, ok := testPositionOf(cfg, it)
			if !ok {
				t.Fatalf("data item without a position: %v", renderItem(it))
			}
			if bytes.Equal(pos, wantPosition(testShard, seq(i), 0)) {
				r := renderItem(it)
				delete(r, AttrPosition) // checked here, left out of what the cases compare
				res.items = append(res.items, r)
				stored++
			}
		}
		for _, it := range db.tables[testErrorTable] {
			if render(it[ErrorAttrSequenceNumber]) == "S:"+seq(i) {
				res.reasons = append(res.reasons, it[ErrorAttrReason].(*types.AttributeValueMemberS).Value)
				stored++
			}
		}
		if stored == 0 {
			res.skipped++
		}
	}
	if got := len(db.tables[testTable]); got != len(res.items) {
		t.Fatalf("data table holds %d items, %d attributed to records", got, len(res.items))
	}
	return res
}

// declMeta is the key and metadata attributes record i gets with the default keys and the default metadata
// (the arrival time only).
func declMeta(i int) map[string]string {
	return map[string]string{
		"id":            "S:" + testShard + ":" + seq(i),
		AttrArrivalTime: "S:2024-09-13T23:06:56.123Z",
	}
}

// declWith is declMeta(i) plus attrs.
func declWith(i int, attrs map[string]string) map[string]string {
	m := declMeta(i)
	for k, v := range attrs {
		m[k] = v
	}
	return m
}

// declCase is a batch through a declarative transform and what it must leave behind.
type declCase struct {
	name    string
	cfg     Config
	give    []string
	want    []map[string]string
	reasons []string
	skipped int
}

func runDeclCases(t *testing.T, tests []declCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runDeclarative(t, tt.cfg, tt.give...)
			if len(res.failures) != 0 {
				t.Errorf("batch item failures %v", res.failures)
			}
			if !reflect.DeepEqual(res.items, tt.want) {
				t.Errorf("items\n%v\nwant\n%v", res.items, tt.want)
			}
			if !reflect.DeepEqual(res.reasons, tt.reasons) {
				t.Errorf("error reasons\n%q\nwant\n%q", res.reasons, tt.reasons)
			}
			if res.skipped != tt.skipped {
				t.Errorf("skipped %d, want %d", res.skipped, tt.skipped)
			}
		})
	}
}

// nestedPayload is a payload with nested objects for the field selection cases.
const nestedPayload = `{"a": {"b": 1, "c": {"d": "x", "e": [1, 2]}}, "f": 3, "g": "four"}`

// validateCase is a transform configuration and the problems Validate reports, in order.
type validateCase struct {
	name string
	give *TransformConfig
	want []string // the problems, in order
}

// runValidateCases checks Validate, and that New refuses what Validate refuses, for each case's transform with keys
// from the payload (Category, Timestamp).
func runValidateCases(t *testing.T, tests []validateCase) {
	t.Helper()
	keys := func(tc *TransformConfig) Config {
		return Config{
			PartitionKey: KeyAttribute{Name: "Category", Type: AttributeTypeString, Source: "Category"},
			SortKey:      &KeyAttribute{Name: "Timestamp", Type: AttributeTypeString},
			Transform:    tc,
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := keys(tt.give).WithDefaults().Validate()
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			// Every problem is one line: the construct maps each line's prefix to a prop. (The filter syntax case
			// quotes an expression holding a newline with %q, so that line holds no raw newline either.)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Validate:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			// The processor refuses what Validate refuses.
			_, nerr := New(newFakeDB(nil), func(o *Options) { o.TableName = "t"; o.Config = keys(tt.give) })
			if (nerr != nil) != (err != nil) {
				t.Errorf("New: %v", nerr)
			}
		})
	}
}

// TestDeclarative covers what needs no expressions; it runs with and without -tags kdp_noexpr.
func TestDeclarative(t *testing.T) {
	runDeclCases(t, []declCase{
		{
			name: "empty transform is the default",
			cfg:  Config{Transform: &TransformConfig{}},
			give: []string{nestedPayload},
			want: []map[string]string{declWith(0, map[string]string{"a": "M{b:N:1,c:M{d:S:x,e:L[N:1,N:2]}}", "f": "N:3", "g": "S:four"})},
		},
		{
			name: "include nested paths",
			cfg:  Config{Transform: &TransformConfig{Include: []string{"a.c.d", "f", "a.b", "missing", "g.h"}}},
			give: []string{nestedPayload},
			want: []map[string]string{declWith(0, map[string]string{"a": "M{b:N:1,c:M{d:S:x}}", "f": "N:3"})},
		},
		{
			name: "include a path and a path inside it",
			cfg:  Config{Transform: &TransformConfig{Include: []string{"a.c", "a"}}},
			give: []string{nestedPayload},
			want: []map[string]string{declWith(0, map[string]string{"a": "M{b:N:1,c:M{d:S:x,e:L[N:1,N:2]}}"})},
		},
		{
			name: "exclude nested paths",
			cfg:  Config{Transform: &TransformConfig{Exclude: []string{"a.c.e", "g", "nothing.here"}}},
			give: []string{nestedPayload},
			want: []map[string]string{declWith(0, map[string]string{"a": "M{b:N:1,c:M{d:S:x}}", "f": "N:3"})},
		},
		{
			name: "include then exclude",
			cfg:  Config{Transform: &TransformConfig{Include: []string{"a"}, Exclude: []string{"a.c"}}},
			give: []string{nestedPayload},
			want: []map[string]string{declWith(0, map[string]string{"a": "M{b:N:1}"})},
		},
		{
			name: "rename nested to top level, swap, missing source",
			cfg: Config{Transform: &TransformConfig{Rename: map[string]string{
				"a.c.d": "D", "f": "g", "g": "f", "missing": "M",
			}}},
			give: []string{nestedPayload},
			want: []map[string]string{declWith(0, map[string]string{"a": "M{b:N:1,c:M{e:L[N:1,N:2]}}", "D": "S:x", "f": "S:four", "g": "N:3"})},
		},
		{
			name: "rename with include keeps the source; exclude the rest of its object",
			cfg: Config{Transform: &TransformConfig{
				Include: []string{"f"}, Rename: map[string]string{"a.c.d": "D"}, Exclude: []string{"a"},
			}},
			give: []string{nestedPayload},
			want: []map[string]string{declWith(0, map[string]string{"D": "S:x", "f": "N:3"})},
		},
		{
			name: "ttl from the arrival time",
			cfg:  Config{Transform: &TransformConfig{TTL: &TTLConfig{Attribute: "expiresAt", Seconds: 3600}}},
			give: []string{`{"expiresAt": "payload's, replaced"}`},
			want: []map[string]string{declWith(0, map[string]string{"expiresAt": "N:1726272416"})},
		},
		{
			name:    "a key missing from the payload is still an error",
			cfg:     Config{PartitionKey: KeyAttribute{Name: "pk", Source: "k"}, Transform: &TransformConfig{Rename: map[string]string{"x": "k"}}},
			give:    []string{`{"x": "renamed keys are not keys"}`},
			reasons: []string{"key attribute pk: payload field k is missing"},
		},
	})
}

func TestValidateTransform(t *testing.T) {
	runValidateCases(t, []validateCase{
		{
			name: "paths",
			give: &TransformConfig{
				Include: []string{"a..b", "c", "c", ""},
				Exclude: []string{"x.", "c", "r.s"},
				Rename:  map[string]string{".y": "Y", "r": "R", "r.t": "T", "q": ""},
			},
			want: []string{
				`transform.include[0]: path "a..b" has an empty segment`,
				`transform.include[2]: path "c" is also transform.include[1]`,
				`transform.include[3]: path "" has an empty segment`,
				`transform.rename[.y]: source path ".y" has an empty segment`,
				`transform.rename[q]: target attribute name is empty`,
				`transform.rename[r.t]: source "r.t" overlaps the source of transform.rename[r]`,
				`transform.exclude[0]: path "x." has an empty segment`,
				`transform.exclude[1]: path "c" excludes what transform.include[1] ("c") keeps`,
				`transform.exclude[1]: path "c" excludes what transform.include[2] ("c") keeps`,
				`transform.exclude[2]: path "r.s" is inside transform.rename[r], which moves it (rename happens first)`,
			},
		},
		{
			name: "ttl",
			give: &TransformConfig{TTL: &TTLConfig{Attribute: "Category", Seconds: MaxTTLSeconds + 1}},
			want: []string{
				`transform.ttl: attribute "Category" is also the partition key`,
				`transform.ttl: seconds 3155760001 must be between 1 and 3155760000 (100 years)`,
			},
		},
		{
			name: "names of metadata attributes not written are free (default metadata: arrival time only)",
			give: &TransformConfig{Rename: map[string]string{"b": "_processedAt"}, TTL: &TTLConfig{Attribute: AttrSequenceNumber, Seconds: 1}},
		},
	})
}

func TestNeedsExpressions(t *testing.T) {
	tests := []struct {
		give *TransformConfig
		want bool
	}{
		{nil, false},
		{&TransformConfig{}, false},
		{&TransformConfig{Include: []string{"a"}, Exclude: []string{"b"}, Rename: map[string]string{"c": "C"},
			TTL: &TTLConfig{Attribute: "exp", Seconds: 1}}, false},
		{&TransformConfig{Schema: json.RawMessage(`null`)}, false},
		{&TransformConfig{Computed: []ComputedAttribute{{Name: "A", Expression: "1"}}}, true},
		{&TransformConfig{Filter: "true"}, true},
		{&TransformConfig{Schema: json.RawMessage(`{}`)}, true},
	}
	for i, tt := range tests {
		if got := (Config{Transform: tt.give}).NeedsExpressions(); got != tt.want {
			t.Errorf("%d: NeedsExpressions() = %v, want %v (%+v)", i, got, tt.want, tt.give)
		}
	}
}
