//go:build integration

package kinesispipeline_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// replayCommandOf returns the start of the ReplayCommand output in a synthesized template, up to "replay":
// ["go", "run", "<kdp package>[@version]", "replay"].
func replayCommandOf(t *testing.T, templatePath string) []string {
	t.Helper()
	b, err := os.ReadFile(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	var tmpl struct {
		Outputs map[string]struct {
			Value struct {
				Join []json.RawMessage `json:"Fn::Join"`
			}
		}
	}
	if err := json.Unmarshal(b, &tmpl); err != nil {
		t.Fatal(err)
	}
	for id, o := range tmpl.Outputs {
		if !strings.HasPrefix(id, "PipelineReplayCommand") || len(o.Value.Join) != 2 {
			continue
		}
		var parts []json.RawMessage
		var first string
		if err := json.Unmarshal(o.Value.Join[1], &parts); err != nil || len(parts) == 0 || json.Unmarshal(parts[0], &first) != nil {
			t.Fatalf("output %s: %s", id, o.Value.Join[1])
		}
		head, _, ok := strings.Cut(first, " replay ")
		if !ok {
			t.Fatalf("output %s starts %q", id, first)
		}
		return append(strings.Fields(head), "replay")
	}
	t.Fatalf("%s has no ReplayCommand output", templatePath)
	return nil
}
