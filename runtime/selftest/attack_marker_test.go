package selftest

import (
	"testing"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// TestAttackSelfTestMarkerKept: the nonce marker is required of the canary's item only where the processor's
// transform writes it unchanged; anywhere else requiring it would fail every run.
func TestAttackSelfTestMarkerKept(t *testing.T) {
	tr := func(t processor.TransformConfig) processor.Config {
		c := processor.DefaultConfig()
		c.Transform = &t
		return c
	}
	tests := []struct {
		name string
		cfg  Config
		want bool
	}{
		{"default", Config{Pipeline: processor.DefaultConfig()}, true},
		{"user's record", Config{Pipeline: processor.DefaultConfig(), Record: `{"a": 1}`}, false},
		{"include without the marker", Config{Pipeline: tr(processor.TransformConfig{Include: []string{"a"}})}, false},
		{"include with the marker", Config{Pipeline: tr(processor.TransformConfig{Include: []string{"a", MarkerField}})}, true},
		{"exclude the marker", Config{Pipeline: tr(processor.TransformConfig{Exclude: []string{MarkerField}})}, false},
		{"rename the marker", Config{Pipeline: tr(processor.TransformConfig{Rename: map[string]string{MarkerField: "m"}})}, false},
		{"rename onto the marker", Config{Pipeline: tr(processor.TransformConfig{Rename: map[string]string{"a": MarkerField}})}, false},
		{"TTL on the marker", Config{Pipeline: tr(processor.TransformConfig{TTL: &processor.TTLConfig{Attribute: MarkerField, Seconds: 60}})}, false},
		{"sort key named like the marker", Config{Pipeline: processor.Config{PartitionKey: processor.DefaultConfig().PartitionKey,
			SortKey: &processor.KeyAttribute{Name: MarkerField, Type: processor.AttributeTypeString, Source: processor.SourcePartitionKey}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cfg.markerKept(); got != tt.want {
				t.Errorf("markerKept = %v, want %v", got, tt.want)
			}
		})
	}
}
