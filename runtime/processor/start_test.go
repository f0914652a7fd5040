package processor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSetup(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, ConfigFileName)
	if err := os.WriteFile(cfgFile, []byte(`{"partitionKey": {"name": "pk", "type": "S", "source": "order.id"}, "errorTtlSeconds": 60}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:1")
	t.Setenv(EnvConfigFile, cfgFile)

	t.Run("ok", func(t *testing.T) {
		t.Setenv(EnvTableName, "data")
		t.Setenv(EnvErrorTableName, "errors")
		p, err := setup(context.Background(), func(o *Options) { o.MaxInFlight = 3 })
		if err != nil {
			t.Fatal(err)
		}
		o := p.Options()
		if o.TableName != "data" || o.ErrorTableName != "errors" || o.Config.PartitionKey.Source != "order.id" || o.Config.ErrorTTLSeconds != 60 || o.MaxInFlight != 3 {
			t.Errorf("options %+v", o)
		}
	})
	t.Run("missing table name and bad config", func(t *testing.T) {
		t.Setenv(EnvTableName, "")
		t.Setenv(EnvConfigFile, filepath.Join(dir, "missing.json"))
		_, err := setup(context.Background())
		if err == nil || !strings.Contains(err.Error(), EnvTableName) || !strings.Contains(err.Error(), "read config") {
			t.Errorf("err = %v", err)
		}
	})
}
