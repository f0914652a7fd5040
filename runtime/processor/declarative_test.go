package processor

import (
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
			if sn, ok := it[AttrSequenceNumber].(*types.AttributeValueMemberS); ok && sn.Value == seq(i) ||
				it["_seq"] != nil && render(it["_seq"]) == "S:"+seq(i) {
				res.items = append(res.items, renderItem(it))
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

const sample = `{"Timestamp": "2024-09-13T23:06:55.934081Z", "Value": 81, "Category": "C"}`

// sampleConfig reproduces the seed's processing declaratively.
func sampleConfig() Config {
	return Config{
		PartitionKey: KeyAttribute{Name: "Category", Type: AttributeTypeString, Source: "Category"},
		SortKey:      &KeyAttribute{Name: "Timestamp", Type: AttributeTypeString, Source: "Timestamp"},
		Transform: &TransformConfig{Computed: []ComputedAttribute{
			{Name: "ProcessedValue", Expression: "Value * 2"},
			{Name: "ProcessedTimestamp", Expression: "iso8601(record.processedAt)"},
		}},
	}
}

func TestDeclarativeSample(t *testing.T) {
	res := runDeclarative(t, sampleConfig(), sample)
	want := map[string]string{
		"Category":           "S:C",
		"Timestamp":          "S:2024-09-13T23:06:55.934081Z",
		"Value":              "N:81",
		"ProcessedValue":     "N:162",
		"ProcessedTimestamp": "S:2024-09-14T00:00:00Z",
		AttrSequenceNumber:   "S:" + seq(0),
		AttrPartitionKey:     "S:pk-0",
		AttrArrivalTime:      "S:2024-09-13T23:06:56.123Z",
		AttrProcessedAt:      "S:2024-09-14T00:00:00Z",
	}
	if len(res.items) != 1 || !reflect.DeepEqual(res.items[0], want) {
		t.Fatalf("items %v\nwant %v", res.items, want)
	}
	// The configuration survives the file format.
	b, err := sampleConfig().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseConfig(b)
	if err != nil || !reflect.DeepEqual(back.Transform, sampleConfig().Transform) {
		t.Fatalf("ParseConfig(Marshal) = %+v, %v\n%s", back.Transform, err, b)
	}
	if !strings.Contains(string(b), `"expression": "Value * 2"`) {
		t.Errorf("file format:\n%s", b)
	}
}

func TestDeclarative(t *testing.T) {
	nested := `{"a": {"b": 1, "c": {"d": "x", "e": [1, 2]}}, "f": 3, "g": "four"}`
	meta := func(i int) map[string]string {
		return map[string]string{
			"id":               "S:" + testShard + ":" + seq(i),
			AttrSequenceNumber: "S:" + seq(i),
			AttrPartitionKey:   fmt.Sprintf("S:pk-%d", i),
			AttrArrivalTime:    "S:2024-09-13T23:06:56.123Z",
			AttrProcessedAt:    "S:2024-09-14T00:00:00Z",
		}
	}
	with := func(i int, attrs map[string]string) map[string]string {
		m := meta(i)
		for k, v := range attrs {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name    string
		cfg     Config
		give    []string
		want    []map[string]string
		reasons []string
		skipped int
	}{
		{
			name: "empty transform is the default",
			cfg:  Config{Transform: &TransformConfig{}},
			give: []string{nested},
			want: []map[string]string{with(0, map[string]string{"a": "M{b:N:1,c:M{d:S:x,e:L[N:1,N:2]}}", "f": "N:3", "g": "S:four"})},
		},
		{
			name: "include nested paths",
			cfg:  Config{Transform: &TransformConfig{Include: []string{"a.c.d", "f", "a.b", "missing", "g.h"}}},
			give: []string{nested},
			want: []map[string]string{with(0, map[string]string{"a": "M{b:N:1,c:M{d:S:x}}", "f": "N:3"})},
		},
		{
			name: "include a path and a path inside it",
			cfg:  Config{Transform: &TransformConfig{Include: []string{"a.c", "a"}}},
			give: []string{nested},
			want: []map[string]string{with(0, map[string]string{"a": "M{b:N:1,c:M{d:S:x,e:L[N:1,N:2]}}"})},
		},
		{
			name: "exclude nested paths",
			cfg:  Config{Transform: &TransformConfig{Exclude: []string{"a.c.e", "g", "nothing.here"}}},
			give: []string{nested},
			want: []map[string]string{with(0, map[string]string{"a": "M{b:N:1,c:M{d:S:x}}", "f": "N:3"})},
		},
		{
			name: "include then exclude",
			cfg:  Config{Transform: &TransformConfig{Include: []string{"a"}, Exclude: []string{"a.c"}}},
			give: []string{nested},
			want: []map[string]string{with(0, map[string]string{"a": "M{b:N:1}"})},
		},
		{
			name: "rename nested to top level, swap, missing source",
			cfg: Config{Transform: &TransformConfig{Rename: map[string]string{
				"a.c.d": "D", "f": "g", "g": "f", "missing": "M",
			}}},
			give: []string{nested},
			want: []map[string]string{with(0, map[string]string{"a": "M{b:N:1,c:M{e:L[N:1,N:2]}}", "D": "S:x", "f": "S:four", "g": "N:3"})},
		},
		{
			name: "rename with include keeps the source; exclude the rest of its object",
			cfg: Config{Transform: &TransformConfig{
				Include: []string{"f"}, Rename: map[string]string{"a.c.d": "D"}, Exclude: []string{"a"},
			}},
			give: []string{nested},
			want: []map[string]string{with(0, map[string]string{"D": "S:x", "f": "N:3"})},
		},
		{
			name: "computed: chained, exact integers, floats, strings, time, undefined fields, collections",
			cfg: Config{Transform: &TransformConfig{Computed: []ComputedAttribute{
				{Name: "Double", Expression: "Value * 2"},
				{Name: "Quad", Expression: "Double * 2"},
				{Name: "Big", Expression: "Value * 100000000000"},
				{Name: "Half", Expression: "Value / 2"},
				{Name: "Price", Expression: "Price * 1.5"}, // replaces the payload's Price
				{Name: "Upper", Expression: "upper(Category) + '-' + record.partitionKey"},
				{Name: "Millis", Expression: "unixMillis(record.arrivalTime)"},
				{Name: "Seconds", Expression: "unixSeconds(date(Timestamp))"},
				{Name: "Iso", Expression: "iso8601(date(Timestamp))"},
				{Name: "Date", Expression: "date(Timestamp)"},
				{Name: "Missing", Expression: "Nope"},
				{Name: "Default", Expression: `Nope ?? "none"`},
				{Name: "Nested", Expression: "a.b + a.c"},
				{Name: "List", Expression: "map(Tags, upper(#))"},
				{Name: "Split", Expression: `split("x,y", ",")`},
				{Name: "Obj", Expression: "{n: len(Tags), ok: Value > 80, shard: record.shardId, id: record.eventId}"},
				{Name: "Seq", Expression: "record.sequenceNumber"},
				{Name: "Shadowed", Expression: "payload.record + $env['odd-name']"},
				{Name: "Record", Expression: "record.partitionKey"},
			}}},
			give: []string{`{"Value": 81, "Price": 2.5, "Category": "c", "Timestamp": "2024-09-13T23:06:55.934081Z",
				"a": {"b": 1, "c": 2.25}, "Tags": ["x", "y"], "record": 7, "odd-name": 3}`},
			want: []map[string]string{with(0, map[string]string{
				"Value": "N:81", "Category": "S:c", "Timestamp": "S:2024-09-13T23:06:55.934081Z",
				"a": "M{b:N:1,c:N:2.25}", "Tags": "L[S:x,S:y]", "record": "N:7", "odd-name": "N:3",
				"Double": "N:162", "Quad": "N:324", "Big": "N:8100000000000", "Half": "N:40.5", "Price": "N:3.75",
				"Upper": "S:C-pk-0", "Millis": "N:1726268816123", "Seconds": "N:1726268815",
				"Iso": "S:2024-09-13T23:06:55.934081Z", "Date": "S:2024-09-13T23:06:55.934081Z",
				"Missing": "NULL", "Default": "S:none", "Nested": "N:3.25", "List": "L[S:X,S:Y]", "Split": "L[S:x,S:y]",
				"Obj": "M{id:S:" + testShard + ":" + seq(0) + ",n:N:2,ok:BOOL:true,shard:S:" + testShard + "}",
				"Seq": "S:" + seq(0), "Shadowed": "N:10", "Record": "S:pk-0",
			})},
		},
		{
			name: "computed runtime errors go to the error table",
			cfg: Config{Transform: &TransformConfig{Computed: []ComputedAttribute{
				{Name: "Double", Expression: "Value * 2"},
				{Name: "Ratio", Expression: "1.0 / Value"},
			}}},
			give: []string{`{"Value": "eighty"}`, `{}`, `{"Value": 0}`, `{"Value": 4}`},
			want: []map[string]string{with(3, map[string]string{"Value": "N:4", "Double": "N:8", "Ratio": "N:0.25"})},
			reasons: []string{
				"transform.computed[0] (Double): invalid operation: string * int (1:7)",
				"transform.computed[0] (Double): invalid operation: <nil> * int (1:7)",
				"transform.computed[1] (Ratio): number +Inf has no DynamoDB representation",
			},
		},
		{
			name:    "filter",
			cfg:     Config{Transform: &TransformConfig{Filter: `Category == "C" && Value > 10 && record.partitionKey != "pk-3"`}},
			give:    []string{`{"Category": "C", "Value": 81}`, `{"Category": "A", "Value": 81}`, `{"Category": "C", "Value": 1}`, `{"Category": "C", "Value": 81}`, `{}`},
			want:    []map[string]string{with(0, map[string]string{"Category": "S:C", "Value": "N:81"})},
			skipped: 4,
		},
		{
			name:    "filter on an undefined field is false",
			cfg:     Config{Transform: &TransformConfig{Filter: "Flag"}},
			give:    []string{`{"Flag": true}`, `{"Flag": false}`, `{}`},
			want:    []map[string]string{with(0, map[string]string{"Flag": "BOOL:true"})},
			skipped: 2,
		},
		{
			name:    "filter giving a non-boolean at run time",
			cfg:     Config{Transform: &TransformConfig{Filter: "Flag"}},
			give:    []string{`{"Flag": "yes"}`},
			reasons: []string{"transform.filter: invalid operation: bool(string) (1:1)"},
		},
		{
			name: "filter sees the payload before selection",
			cfg: Config{Transform: &TransformConfig{
				Filter: "Secret == 's'", Exclude: []string{"Secret"},
				Computed: []ComputedAttribute{{Name: "HadSecret", Expression: "Secret != nil"}},
			}},
			give:    []string{`{"Secret": "s", "v": 1}`, `{"Secret": "t"}`},
			want:    []map[string]string{with(0, map[string]string{"v": "N:1", "HadSecret": "BOOL:true"})},
			skipped: 1,
		},
		{
			name: "schema",
			cfg: Config{Transform: &TransformConfig{Schema: json.RawMessage(`{
				"type": "object",
				"required": ["Category", "Value"],
				"properties": {
					"Category": {"enum": ["A", "B", "C"]},
					"Value": {"type": "integer", "minimum": 0},
					"Timestamp": {"type": "string", "format": "date-time"}
				}
			}`)}},
			give: []string{
				`{"Category": "C", "Value": 81, "Timestamp": "2024-09-13T23:06:55.934081Z"}`,
				`{"Category": "D", "Value": -1.5}`,
				`{"Value": 1, "Timestamp": "yesterday"}`,
			},
			want: []map[string]string{with(0, map[string]string{"Category": "S:C", "Value": "N:81", "Timestamp": "S:2024-09-13T23:06:55.934081Z"})},
			reasons: []string{
				`does not match the schema: at '/Category': value must be one of 'A', 'B', 'C'; at '/Value': got number, want integer`,
				`does not match the schema: at '': missing property 'Category'; at '/Timestamp': 'yesterday' is not valid date-time: less than 20 characters long`,
			},
		},
		{
			name: "schema runs before the filter",
			cfg: Config{Transform: &TransformConfig{
				Schema: json.RawMessage(`{"required": ["Value"]}`),
				Filter: "Value > 100",
			}},
			give:    []string{`{"Value": 1}`, `{}`},
			reasons: []string{"does not match the schema: at '': missing property 'Value'"},
			skipped: 1,
		},
		{
			name: "ttl from the arrival time",
			cfg:  Config{Transform: &TransformConfig{TTL: &TTLConfig{Attribute: "expiresAt", Seconds: 3600}}},
			give: []string{`{"expiresAt": "payload's, replaced"}`},
			want: []map[string]string{with(0, map[string]string{"expiresAt": "N:1726272416"})},
		},
		{
			name: "keys read the original payload; metadata omitted",
			cfg: Config{
				PartitionKey: KeyAttribute{Name: "pk", Type: AttributeTypeString, Source: "order.customer"},
				SortKey:      &KeyAttribute{Name: "sk", Type: AttributeTypeNumber, Source: "order.n"},
				Transform: &TransformConfig{
					OmitMetadata: true,
					Exclude:      []string{"order"},
					Rename:       map[string]string{"note": "_processedAt"},
					Computed:     []ComputedAttribute{{Name: "_seq", Expression: "record.sequenceNumber"}},
				},
			},
			give: []string{`{"order": {"customer": "c1", "n": 3}, "note": "hi"}`},
			want: []map[string]string{{"pk": "S:c1", "sk": "N:3", "_processedAt": "S:hi", "_seq": "S:" + seq(0)}},
		},
		{
			name:    "a key missing from the payload is still an error",
			cfg:     Config{PartitionKey: KeyAttribute{Name: "pk", Source: "k"}, Transform: &TransformConfig{Rename: map[string]string{"x": "k"}}},
			give:    []string{`{"x": "renamed keys are not keys"}`},
			reasons: []string{"key attribute pk: payload field k is missing"},
		},
	}
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

func TestValidateTransform(t *testing.T) {
	keys := func(tc *TransformConfig) Config {
		return Config{
			PartitionKey: KeyAttribute{Name: "Category", Type: AttributeTypeString, Source: "Category"},
			SortKey:      &KeyAttribute{Name: "Timestamp", Type: AttributeTypeString},
			Transform:    tc,
		}
	}
	tests := []struct {
		name string
		give *TransformConfig
		want []string // the problems, in order
	}{
		{name: "valid", give: sampleConfig().Transform},
		{
			name: "bad expressions",
			give: &TransformConfig{Computed: []ComputedAttribute{
				{Name: "A", Expression: "Value *"},
				{Name: "B", Expression: "record.eventID"},
				{Name: "C", Expression: ""},
				{Name: "D", Expression: "upper(1)"},
				{Name: "E", Expression: "record"},
				{Name: "F", Expression: "Value * 2"},
			}},
			want: []string{
				`transform.computed[0] (A): expression "Value *": unexpected token EOF (1:7)`,
				`transform.computed[1] (B): expression "record.eventID": type processor.exprRecord has no field eventID (1:8)`,
				`transform.computed[2] (C): expression is empty`,
				`transform.computed[3] (D): expression "upper(1)": cannot use int as argument (type string) to call upper  (1:7)`,
				`transform.computed[4] (E): expression "record" gives a *processor.exprRecord, which has no DynamoDB representation`,
			},
		},
		{
			name: "filter not boolean",
			give: &TransformConfig{Filter: "len(Category)"},
			want: []string{`transform.filter: expression "len(Category)": expected bool, but got int`},
		},
		{
			name: "filter syntax",
			give: &TransformConfig{Filter: "Category ==\n\"C\" &&"},
			want: []string{`transform.filter: expression "Category ==\n\"C\" &&": unexpected token EOF (2:6)`},
		},
		{
			name: "schema not JSON",
			give: &TransformConfig{Schema: json.RawMessage(`{"type": `)},
			want: []string{"transform.schema: not valid JSON: unexpected EOF"},
		},
		{
			name: "schema not a schema",
			give: &TransformConfig{Schema: json.RawMessage(`{"type": "float", "minimum": "0"}`)},
			want: []string{`transform.schema: not a valid schema: at '/minimum': got string, want number; at '/type': got string, want array; at '/type': value must be one of 'array', 'boolean', 'integer', 'null', 'number', 'object', 'string'`},
		},
		{
			name: "schema with a remote reference",
			give: &TransformConfig{Schema: json.RawMessage(`{"$ref": "https://example.com/s.json"}`)},
			want: []string{"transform.schema: reference \"https://example.com/s.json\": the schema must be self-contained: references to other documents are not supported"},
		},
		{
			name: "schema of the wrong kind",
			give: &TransformConfig{Schema: json.RawMessage(`[1]`)},
			want: []string{"transform.schema: must be a JSON object or boolean"},
		},
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
			name: "collisions",
			give: &TransformConfig{
				Rename: map[string]string{"a": "Category", "b": "_processedAt", "c": "X", "d": "X"},
				Computed: []ComputedAttribute{
					{Name: "Timestamp", Expression: "1"},
					{Name: "X", Expression: "1"},
					{Name: "Y", Expression: "1"},
					{Name: "Y", Expression: "2"},
					{Name: "exp", Expression: "3"},
					{Name: "", Expression: "3"},
				},
				TTL: &TTLConfig{Attribute: "exp", Seconds: 0},
			},
			want: []string{
				`transform.ttl: seconds 0 must be between 1 and 3155760000 (100 years)`,
				`transform.rename[a]: attribute "Category" is also the partition key`,
				`transform.rename[b]: attribute "_processedAt" is also a metadata attribute (set omitMetadata to drop those)`,
				`transform.rename[d]: attribute "X" is also the target of transform.rename[c]`,
				`transform.computed[0] (Timestamp): attribute "Timestamp" is also the sort key`,
				`transform.computed[1] (X): attribute "X" is also the target of transform.rename[c]`,
				`transform.computed[3] (Y): attribute "Y" is also computed by transform.computed[2] (Y)`,
				`transform.computed[4] (exp): attribute "exp" is also the TTL attribute (transform.ttl)`,
				`transform.computed[5] (): name is empty`,
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
			name: "metadata names are free without metadata",
			give: &TransformConfig{OmitMetadata: true, Rename: map[string]string{"b": "_processedAt"}, TTL: &TTLConfig{Attribute: AttrArrivalTime, Seconds: 1}},
		},
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

func TestDefaultTransformInvalidConfig(t *testing.T) {
	tr := DefaultTransform(Config{Transform: &TransformConfig{Filter: "1 +"}})
	_, err := tr(context.Background(), &Record{Data: map[string]any{}})
	if err == nil || IsPermanent(err) || !strings.Contains(err.Error(), "transform.filter:") {
		t.Fatalf("err = %v, want a transient error naming transform.filter", err)
	}
}

// TestDeclarativeConcurrent runs one declarative processor on several batches at once (run with -race).
func TestDeclarativeConcurrent(t *testing.T) {
	cfg := sampleConfig()
	cfg.Transform.Filter = "Value % 2 == 0"
	db := newFakeDB(map[string][]KeyAttribute{testTable: testKeys(cfg), testErrorTable: {{Name: "id", Type: AttributeTypeString}}})
	p := newTestProcessor(t, db, func(o *Options) { o.Config = cfg })
	done := make(chan error)
	for g := range 4 {
		go func() {
			var payloads []string
			for i := range 50 {
				payloads = append(payloads, fmt.Sprintf(`{"Timestamp": "t%d-%d", "Value": %d, "Category": "C"}`, g, i, i))
			}
			resp, err := p.Handle(context.Background(), event(payloads...))
			if err == nil && len(resp.BatchItemFailures) > 0 {
				err = fmt.Errorf("failures %v", resp.BatchItemFailures)
			}
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got := len(db.tables[testTable]); got != 100 {
		t.Fatalf("stored %d items, want 100", got)
	}
	for _, it := range db.tables[testTable] {
		v := it["Value"].(*types.AttributeValueMemberN).Value
		if render(it["ProcessedValue"]) != "N:"+fmt.Sprint(2*atoiT(t, v)) {
			t.Fatalf("item %v", renderItem(it))
		}
	}
}

func atoiT(t *testing.T, s string) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}
