//go:build kdp_noexpr

package processor

import (
	"context"
	"encoding/json"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

// TestNoExprRejects checks that a processor built with -tags kdp_noexpr refuses computed attributes, a filter and a
// schema, with a message naming the tag, in Validate, ParseConfig, New and DefaultTransform; never ignoring them.
func TestNoExprRejects(t *testing.T) {
	computed := "transform.computed[0] (X): this processor was built with -tags kdp_noexpr, which leaves out expressions; rebuild without it"
	filter := "transform.filter: this processor was built with -tags kdp_noexpr, which leaves out expressions; rebuild without it"
	schema := "transform.schema: this processor was built with -tags kdp_noexpr, which leaves out JSON Schema validation; rebuild without it"
	tests := []struct {
		name string
		give *TransformConfig
		want []string
	}{
		{"computed", &TransformConfig{Computed: []ComputedAttribute{{Name: "X", Expression: "Value * 2"}}}, []string{computed}},
		{"filter", &TransformConfig{Filter: "Value > 1"}, []string{filter}},
		{"schema", &TransformConfig{Schema: json.RawMessage(`{"type": "object"}`)}, []string{schema}},
		{
			name: "all of them, with field selection",
			give: &TransformConfig{
				Include:  []string{"Value"},
				Computed: []ComputedAttribute{{Name: "X", Expression: "1"}, {Name: "Y", Expression: "2"}},
				Filter:   "true",
				Schema:   json.RawMessage(`true`),
			},
			want: []string{
				computed,
				strings.Replace(computed, "[0] (X)", "[1] (Y)", 1),
				filter,
				schema,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Transform: tt.give}
			if !cfg.NeedsExpressions() {
				t.Errorf("NeedsExpressions() = false")
			}
			err := cfg.WithDefaults().Validate()
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Validate:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}

			_, err = New(newFakeDB(nil), func(o *Options) { o.TableName = "t"; o.Config = cfg })
			if err == nil || !strings.Contains(err.Error(), tt.want[0]) {
				t.Errorf("New: %v, want an error containing %q", err, tt.want[0])
			}

			file, merr := cfg.Marshal()
			if merr != nil {
				t.Fatal(merr)
			}
			if _, err := ParseConfig(file); err == nil || !strings.Contains(err.Error(), tt.want[0]) {
				t.Errorf("ParseConfig: %v, want an error containing %q", err, tt.want[0])
			}

			_, err = DefaultTransform(cfg)(context.Background(), &Record{Data: map[string]any{"Value": json.Number("2")}})
			if err == nil || IsPermanent(err) || !strings.Contains(err.Error(), tt.want[0]) {
				t.Errorf("DefaultTransform: %v, want a transient error containing %q", err, tt.want[0])
			}
		})
	}
}

// TestNoExprFieldSelection runs a configuration that needs no expressions (keys from the payload, Include, Rename,
// Exclude, TTL, no metadata) through Handle under -tags kdp_noexpr.
func TestNoExprFieldSelection(t *testing.T) {
	cfg := Config{
		PartitionKey: KeyAttribute{Name: "pk", Type: AttributeTypeString, Source: "order.customer"},
		SortKey:      &KeyAttribute{Name: "sk", Type: AttributeTypeNumber, Source: "order.n"},
		Metadata:     []string{},
		Transform: &TransformConfig{
			Include: []string{"order", "_seq", "keep"},
			Rename:  map[string]string{"note": "Note"},
			Exclude: []string{"order.secret"},
			TTL:     &TTLConfig{Attribute: "expiresAt", Seconds: 3600},
		},
	}
	if cfg.NeedsExpressions() {
		t.Fatal("NeedsExpressions() = true")
	}
	// Without metadata, runDeclarative finds the item by its _seq attribute, here a payload field.
	res := runDeclarative(t, cfg, `{"order": {"customer": "c1", "n": 3, "secret": "s"}, "note": "hi", "keep": true, "drop": 1, "_seq": "`+seq(0)+`"}`)
	want := []map[string]string{{
		"pk": "S:c1", "sk": "N:3", "order": "M{customer:S:c1,n:N:3}", "Note": "S:hi", "keep": "BOOL:true",
		"_seq": "S:" + seq(0), "expiresAt": "N:1726272416",
	}}
	if len(res.failures) != 0 || len(res.reasons) != 0 || res.skipped != 0 || !reflect.DeepEqual(res.items, want) {
		t.Fatalf("items %v, reasons %q, skipped %d, failures %v\nwant items %v", res.items, res.reasons, res.skipped, res.failures, want)
	}
}

// TestNoExprLeavesOutLibraries checks that the processor command, built with -tags kdp_noexpr, links neither the
// expression nor the JSON Schema library (test binaries carry no dependency list, so it asks go list).
func TestNoExprLeavesOutLibraries(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(gotool, "list", "-deps", "-tags", NoExprBuildTag, "../cmd/processor").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(pkg, "expr-lang") || strings.Contains(pkg, "jsonschema") {
			t.Errorf("with -tags %s, the processor still depends on %s", NoExprBuildTag, pkg)
		}
	}
}
