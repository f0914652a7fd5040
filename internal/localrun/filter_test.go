package localrun

import (
	"strings"
	"testing"
)

// The rules and events below are the examples of the Lambda developer guide ("Control which events Lambda sends to
// your function": the filter rule syntax table; "Using event filtering with a Kinesis event source"), wrapped in
// `data` as a Kinesis mapping needs.
func TestFilterMatches(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		data    string
		want    bool
	}{
		{"null", `{"data":{"UserID":[null]}}`, `{"UserID":null}`, true},
		{"null: a value is not null", `{"data":{"UserID":[null]}}`, `{"UserID":"u1"}`, false},
		{"null: absent is not null", `{"data":{"UserID":[null]}}`, `{"Other":1}`, false},
		{"empty", `{"data":{"LastName":[""]}}`, `{"LastName":""}`, true},
		{"empty: a value is not empty", `{"data":{"LastName":[""]}}`, `{"LastName":"Doe"}`, false},
		{"equals", `{"data":{"Name":["Alice"]}}`, `{"Name":"Alice"}`, true},
		{"equals is case-sensitive", `{"data":{"Name":["Alice"]}}`, `{"Name":"alice"}`, false},
		{"equals (ignore case)", `{"data":{"Name":[{"equals-ignore-case":"alice"}]}}`, `{"Name":"ALICE"}`, true},
		{"and", `{"data":{"Location":["New York"],"Day":["Monday"]}}`, `{"Location":"New York","Day":"Monday"}`, true},
		{"and: one field differs", `{"data":{"Location":["New York"],"Day":["Monday"]}}`, `{"Location":"New York","Day":"Tuesday"}`, false},
		{"or", `{"data":{"PaymentType":["Credit","Debit"]}}`, `{"PaymentType":"Debit"}`, true},
		{"or: neither", `{"data":{"PaymentType":["Credit","Debit"]}}`, `{"PaymentType":"Cash"}`, false},
		{"or (multiple fields)", `{"data":{"$or":[{"Location":["New York"]},{"Day":["Monday"]}]}}`, `{"Location":"Boston","Day":"Monday"}`, true},
		{"or (multiple fields): neither", `{"data":{"$or":[{"Location":["New York"]},{"Day":["Monday"]}]}}`, `{"Location":"Boston","Day":"Friday"}`, false},
		{"not", `{"data":{"Weather":[{"anything-but":["Raining"]}]}}`, `{"Weather":"Sunny"}`, true},
		{"not: the excluded value", `{"data":{"Weather":[{"anything-but":["Raining"]}]}}`, `{"Weather":"Raining"}`, false},
		{"not: absent does not match", `{"data":{"Weather":[{"anything-but":["Raining"]}]}}`, `{"Other":"Sunny"}`, false},
		{"not (ignore case)", `{"data":{"Weather":[{"anything-but":{"equals-ignore-case":"raining"}}]}}`, `{"Weather":"RAINING"}`, false},
		{"numeric (equals)", `{"data":{"Price":[{"numeric":["=",100]}]}}`, `{"Price":100.0}`, true},
		{"numeric (equals): a string is not a number", `{"data":{"Price":[{"numeric":["=",100]}]}}`, `{"Price":"100"}`, false},
		{"numeric (range)", `{"data":{"Price":[{"numeric":[">",10,"<=",20]}]}}`, `{"Price":20}`, true},
		{"numeric (range): lower bound excluded", `{"data":{"Price":[{"numeric":[">",10,"<=",20]}]}}`, `{"Price":10}`, false},
		{"numeric (range): above", `{"data":{"Price":[{"numeric":[">",10,"<=",20]}]}}`, `{"Price":20.5}`, false},
		{"exists", `{"data":{"ProductName":[{"exists":true}]}}`, `{"ProductName":"Widget"}`, true},
		{"exists: absent", `{"data":{"ProductName":[{"exists":true}]}}`, `{"Other":1}`, false},
		{"does not exist", `{"data":{"ProductName":[{"exists":false}]}}`, `{"Other":1}`, true},
		{"does not exist: present", `{"data":{"ProductName":[{"exists":false}]}}`, `{"ProductName":"Widget"}`, false},
		{"begins with", `{"data":{"Region":[{"prefix":"us-"}]}}`, `{"Region":"us-east-1"}`, true},
		{"begins with: no", `{"data":{"Region":[{"prefix":"us-"}]}}`, `{"Region":"eu-west-1"}`, false},
		{"begins with (ignore case)", `{"data":{"Region":[{"prefix":{"equals-ignore-case":"US-"}}]}}`, `{"Region":"us-east-1"}`, true},
		{"ends with", `{"data":{"FileName":[{"suffix":".png"}]}}`, `{"FileName":"photo.png"}`, true},
		{"ends with: no", `{"data":{"FileName":[{"suffix":".png"}]}}`, `{"FileName":"photo.jpg"}`, false},
		{"ends with (ignore case)", `{"data":{"FileName":[{"suffix":{"equals-ignore-case":".PNG"}}]}}`, `{"FileName":"photo.png"}`, true},
		{"Kinesis guide: nested field", `{"data":{"order":{"type":["buy"]}}}`, `{"record":12345,"order":{"type":"buy","stock":"ANYCO","quantity":1000}}`, true},
		{"Kinesis guide: nested field differs", `{"data":{"order":{"type":["buy"]}}}`, `{"record":12345,"order":{"type":"sell","stock":"ANYCO","quantity":1000}}`, false},
		{"an array matches when one element does", `{"data":{"tire_pressure":[{"numeric":["<",32]}]}}`, `{"tire_pressure":[41,40,31,41]}`, true},
		{"an array: no element matches", `{"data":{"tire_pressure":[{"numeric":["<",32]}]}}`, `{"tire_pressure":[41,40,33,41]}`, false},
		{"an array of objects", `{"data":{"items":{"sku":["b"]}}}`, `{"items":[{"sku":"a"},{"sku":"b"}]}`, true},
		{"boolean", `{"data":{"active":[true]}}`, `{"active":true}`, true},
		{"a nested pattern does not match a scalar", `{"data":{"order":{"type":["buy"]}}}`, `{"order":"buy"}`, false},
		{"data that is not an object", `{"data":{"a":["b"]}}`, `["a","b"]`, false},
		{"data that is not JSON", `{"data":{"a":["b"]}}`, `{"a":"b"`, false},
		{"data that is not UTF-8", `{"data":{"a":[{"exists":true}]}}`, "{\"a\":\"\xff\"}", false},
		{"data with a second value", `{"data":{"a":["b"]}}`, `{"a":"b"} {"a":"b"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := compileFilters([]string{tt.pattern})
			if err != nil {
				t.Fatal(err)
			}
			if got := fs.keep([]byte(tt.data)); got != tt.want {
				t.Errorf("pattern %s on data %s: keep = %v, want %v", tt.pattern, tt.data, got, tt.want)
			}
		})
	}
}

func TestFilterPatternErrors(t *testing.T) {
	six := make([]string, 6)
	for i := range six {
		six[i] = `{"data":{"a":["b"]}}`
	}
	tests := []struct {
		name     string
		patterns []string
		want     string
	}{
		{"more than five filters", six, "6 filters: a mapping accepts at most 5"},
		{"not JSON", []string{`{"data":`}, "pattern is not JSON"},
		{"metadata field", []string{`{"partitionKey":["a"]}`}, `field "partitionKey": Kinesis event source mappings filter on data only`},
		{"metadata field in $or", []string{`{"$or":[{"data":{"a":["b"]}},{"kinesis":{"partitionKey":["a"]}}]}`}, `field "kinesis"`},
		{"a value outside a list", []string{`{"data":{"a":"b"}}`}, `data.a: a value must be in a list, as in ["b"]`},
		{"an empty list", []string{`{"data":{"a":[]}}`}, "data.a: an empty list matches nothing"},
		{"wildcard", []string{`{"data":{"a":[{"wildcard":"*.png"}]}}`}, `operator "wildcard" is not supported by Lambda event filtering`},
		{"cidr", []string{`{"data":{"ip":[{"cidr":"10.0.0.0/24"}]}}`}, `operator "cidr"`},
		{"unknown operator", []string{`{"data":{"a":[{"contains":"x"}]}}`}, `unknown operator "contains"`},
		{"anything-but prefix", []string{`{"data":{"a":[{"anything-but":{"prefix":"x"}}]}}`}, "is not supported here"},
		{"numeric operator", []string{`{"data":{"a":[{"numeric":["!=",1]}]}}`}, `numeric operator "!="`},
		{"numeric range upside down", []string{`{"data":{"a":[{"numeric":["<",1,">",0]}]}}`}, "must be a lower bound"},
		{"exists not a boolean", []string{`{"data":{"a":[{"exists":"yes"}]}}`}, "exists takes true or false"},
		{"$or with one branch", []string{`{"data":{"$or":[{"a":["b"]}]}}`}, "at least two pattern objects"},
		{"two operators in one object", []string{`{"data":{"a":[{"prefix":"x","suffix":"y"}]}}`}, "exactly one operator"},
		{"every problem at once", []string{`{"data":{"a":"b"}}`, `{"other":["c"]}`}, "filter 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compileFilters(tt.patterns)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
