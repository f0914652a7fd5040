//go:build !kdp_noexpr

package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

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
		AttrArrivalTime:      "S:2024-09-13T23:06:56.123Z",
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

// TestDeclarativeExpressions covers computed attributes, the filter and the schema.
func TestDeclarativeExpressions(t *testing.T) {
	runDeclCases(t, []declCase{
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
			want: []map[string]string{declWith(0, map[string]string{
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
			want: []map[string]string{declWith(3, map[string]string{"Value": "N:4", "Double": "N:8", "Ratio": "N:0.25"})},
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
			want:    []map[string]string{declWith(0, map[string]string{"Category": "S:C", "Value": "N:81"})},
			skipped: 4,
		},
		{
			name:    "filter on an undefined field is false",
			cfg:     Config{Transform: &TransformConfig{Filter: "Flag"}},
			give:    []string{`{"Flag": true}`, `{"Flag": false}`, `{}`},
			want:    []map[string]string{declWith(0, map[string]string{"Flag": "BOOL:true"})},
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
			want:    []map[string]string{declWith(0, map[string]string{"v": "N:1", "HadSecret": "BOOL:true"})},
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
			want: []map[string]string{declWith(0, map[string]string{"Category": "S:C", "Value": "N:81", "Timestamp": "S:2024-09-13T23:06:55.934081Z"})},
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
			name: "keys read the original payload; metadata omitted",
			cfg: Config{
				PartitionKey: KeyAttribute{Name: "pk", Type: AttributeTypeString, Source: "order.customer"},
				SortKey:      &KeyAttribute{Name: "sk", Type: AttributeTypeNumber, Source: "order.n"},
				Metadata:     []string{},
				Transform: &TransformConfig{
					Exclude:  []string{"order"},
					Rename:   map[string]string{"note": "_processedAt"},
					Computed: []ComputedAttribute{{Name: "_seq", Expression: "record.sequenceNumber"}},
				},
			},
			give: []string{`{"order": {"customer": "c1", "n": 3}, "note": "hi"}`},
			want: []map[string]string{{"pk": "S:c1", "sk": "N:3", "_processedAt": "S:hi", "_seq": "S:" + seq(0)}},
		},
	})
}

func TestValidateTransformExpressions(t *testing.T) {
	runValidateCases(t, []validateCase{
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
				`transform.rename[d]: attribute "X" is also the target of transform.rename[c]`,
				`transform.computed[0] (Timestamp): attribute "Timestamp" is also the sort key`,
				`transform.computed[1] (X): attribute "X" is also the target of transform.rename[c]`,
				`transform.computed[3] (Y): attribute "Y" is also computed by transform.computed[2] (Y)`,
				`transform.computed[4] (exp): attribute "exp" is also the TTL attribute (transform.ttl)`,
				`transform.computed[5] (): name is empty`,
			},
		},
	})
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
