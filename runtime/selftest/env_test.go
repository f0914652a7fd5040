package selftest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

func TestFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Pipeline: processor.DefaultConfig(), Malformed: true}
	b, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFileName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	full := map[string]string{
		"LAMBDA_TASK_ROOT": dir, EnvStreamName: "s", EnvStreamARN: "arn:s", processor.EnvTableName: "t",
		processor.EnvErrorTableName: "e", EnvMappingUUID: "u", EnvTimeoutSeconds: "90",
	}
	tests := []struct {
		name    string
		unset   string
		set     map[string]string
		want    Options
		wantErr string
	}{
		{name: "everything", want: Options{StreamName: "s", StreamARN: "arn:s", TableName: "t", ErrorTableName: "e", MappingUUID: "u", Timeout: 90 * time.Second}},
		{name: "default timeout", unset: EnvTimeoutSeconds, want: Options{StreamName: "s", StreamARN: "arn:s", TableName: "t", ErrorTableName: "e", MappingUUID: "u", Timeout: DefaultTimeout}},
		{name: "no table", unset: processor.EnvTableName, wantErr: processor.EnvTableName},
		{name: "bad timeout", set: map[string]string{EnvTimeoutSeconds: "soon"}, wantErr: `"soon" is not a positive number`},
		{name: "no config file", set: map[string]string{EnvConfigFile: filepath.Join(dir, "missing.json")}, wantErr: "read self-test config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range full {
				env[k] = v
			}
			delete(env, tt.unset)
			for k, v := range tt.set {
				env[k] = v
			}
			fn, err := FromEnvironment(func(k string) string { return env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("FromEnvironment = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got Options
			fn(&got)
			if !got.Config.Malformed || got.Config.Pipeline.PartitionKey != processor.DefaultConfig().PartitionKey {
				t.Errorf("config %+v", got.Config)
			}
			got.Config = Config{}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("options %+v, want %+v", got, tt.want)
			}
		})
	}
}
