package kdplocal

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPrintedCommands: the kdp replay and kdp redrive s3 commands --keep prints name the pipeline's tables, its
// configuration when the asset holds one, and, with Aggregates, the aggregate table (the records they store are
// recounted there; without it a configuration with aggregates is a usage error).
func TestPrintedCommands(t *testing.T) {
	withConfig := t.TempDir()
	if err := os.WriteFile(filepath.Join(withConfig, "pipeline.json"), []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	const arn = "arn:aws:kinesis:us-east-1:000000000000:stream/S"
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name        string
		p           pipeline
		wantReplay  string
		wantRedrive string
	}{
		{name: "data table only", p: pipeline{table: table{logicalID: "Data"}, assetDir: t.TempDir()},
			wantReplay:  "kdp replay --stream " + arn + " --since 2026-01-02T03:04:05Z --table Data",
			wantRedrive: "kdp redrive s3 --bucket b --prefix aws/lambda/u/ --stream " + arn + " --table Data"},
		{name: "error table and configuration", p: pipeline{table: table{logicalID: "Data"}, errorTable: &table{logicalID: "Errors"}, assetDir: withConfig},
			wantReplay:  "kdp replay --stream " + arn + " --since 2026-01-02T03:04:05Z --table Data --error-table Errors --config " + filepath.Join(withConfig, "pipeline.json"),
			wantRedrive: "kdp redrive s3 --bucket b --prefix aws/lambda/u/ --stream " + arn + " --table Data --error-table Errors --config " + filepath.Join(withConfig, "pipeline.json")},
		{name: "aggregates", p: pipeline{table: table{logicalID: "Data"}, errorTable: &table{logicalID: "Errors"}, aggTable: &table{logicalID: "Aggs"}, assetDir: withConfig},
			wantReplay:  "kdp replay --stream " + arn + " --since 2026-01-02T03:04:05Z --table Data --error-table Errors --config " + filepath.Join(withConfig, "pipeline.json") + " --aggregate-table Aggs",
			wantRedrive: "kdp redrive s3 --bucket b --prefix aws/lambda/u/ --stream " + arn + " --table Data --error-table Errors --config " + filepath.Join(withConfig, "pipeline.json") + " --aggregate-table Aggs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := replayCommand(&tt.p, arn, since); got != tt.wantReplay {
				t.Errorf("replay command\n got %s\nwant %s", got, tt.wantReplay)
			}
			if got := redriveS3Command(&tt.p, "b", "aws/lambda/u/", arn); got != tt.wantRedrive {
				t.Errorf("redrive command\n got %s\nwant %s", got, tt.wantRedrive)
			}
		})
	}
}
