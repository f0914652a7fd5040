//go:build !kdp_noexpr

package selftest

import (
	"encoding/json"
	"testing"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// TestConfigValidateSchema: with the user's record a schema is fine. A processor built with -tags kdp_noexpr
// (processor.NoExprBuildTag) rejects any schema, and the bundler never builds one for a configuration with a schema.
func TestConfigValidateSchema(t *testing.T) {
	c := Config{Pipeline: processor.Config{Transform: &processor.TransformConfig{Schema: json.RawMessage(`{"type":"object"}`)}},
		Record: `{"a":1}`}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate = %v", err)
	}
}
