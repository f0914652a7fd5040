//go:build !kdp_noexpr

package processor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExpressionCallsOfUnknownFunctions: a call of a name that is not a function fails compilation, naming the
// expression and the nearest known function; undefined variables (payload fields) stay allowed.
func TestExpressionCallsOfUnknownFunctions(t *testing.T) {
	tests := []struct {
		name     string
		computed string // a computed attribute's expression, or "" for none
		filter   string
		want     []string // substrings of the error; none means the configuration is valid
	}{
		{name: "misspelled builtin", computed: "uper(Category)", want: []string{
			`transform.computed[0] (Out): expression "uper(Category)": unknown function uper (nearest known function: upper) (1:1)`}},
		{name: "misspelled helper", computed: "unixMilis(record.arrivalTime)", want: []string{
			"unknown function unixMilis (nearest known function: unixMillis)"}},
		{name: "transposed digits", computed: "iso8061(record.processedAt)", want: []string{
			"unknown function iso8061 (nearest known function: iso8601)"}},
		{name: "capitalised", computed: "Upper(Category)", want: []string{
			"unknown function Upper (nearest known function: upper)"}},
		{name: "in the filter", filter: `lowr(Category) == "c"`, want: []string{
			`transform.filter: expression "lowr(Category) == \"c\"": unknown function lowr (nearest known function: lower)`}},
		{name: "through a pipe", computed: "Category | uper()", want: []string{"unknown function uper (nearest known function: upper)"}},
		{name: "nested in a known call", computed: "upper(trimm(Category))", want: []string{
			"unknown function trimm (nearest known function: trim) (1:7)"}},
		{name: "every unknown call, in order", computed: "lowr(A) + uper(B)", want: []string{
			"unknown function lowr (nearest known function: lower) (1:1); unknown function uper (nearest known function: upper) (1:11)"}},
		{name: "method of a payload value", computed: "Category.upper()", want: []string{
			"Category.upper is not a method (payload values have none; nearest known function: upper) (1:10)"}},
		{name: "method of the payload", computed: "payload.lenght()", want: []string{
			"payload.lenght is not a method (payload values have none; nearest known function: len)"}},
		{name: "on a second line", computed: "Value +\n  sume(Values)", want: []string{"unknown function sume (nearest known function: sum) (2:3)"}},

		{name: "builtin", computed: "upper(Category)"},
		{name: "missing payload field", computed: "NoSuchField ?? 'none'"},
		{name: "helper", computed: "unixMillis(record.arrivalTime)"},
		{name: "method of a typed value", computed: "record.arrivalTime.Unix()"},
		{name: "method of a builtin's result", computed: "now().Year()"},
		{name: "predicate builtin", computed: "filter(Tags ?? [], # != '')"},
		{name: "function bound by let", computed: "let f = upper; f(Category)"},
		{name: "valid filter", filter: "Value > 10 && lower(Category) == 'c'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := &TransformConfig{Filter: tt.filter}
			if tt.computed != "" {
				tc.Computed = []ComputedAttribute{{Name: "Out", Expression: tt.computed}}
			}
			err := Config{Transform: tc}.WithDefaults().Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("want a valid configuration, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("want an error, got none")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error must contain %q, got:\n%v", w, err)
				}
			}
		})
	}
}

// TestColdStartRejectsUnknownFunction: a configuration file calling an unknown function (written by an older
// construct, or by hand) fails the processor's cold start instead of sending every record to the error table.
func TestColdStartRejectsUnknownFunction(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), ConfigFileName)
	raw := `{"partitionKey": {"name": "id", "type": "S"}, "transform": {"computed": [{"name": "U", "expression": "uper(Category)"}]}}`
	if err := os.WriteFile(cfgFile, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:1")
	t.Setenv(EnvTableName, "data")
	t.Setenv(EnvErrorTableName, "errors")
	t.Setenv(EnvConfigFile, cfgFile)
	_, err := setup(context.Background())
	if err == nil || !strings.Contains(err.Error(), "unknown function uper (nearest known function: upper)") {
		t.Fatalf("setup: want the unknown function named, got %v", err)
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"", "abc", 3}, {"abc", "", 3}, {"upper", "upper", 0}, {"uper", "upper", 1},
		{"kitten", "sitting", 3}, {"iso8061", "iso8601", 2}, {"flaw", "lawn", 2}, {"äb", "ab", 1},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
