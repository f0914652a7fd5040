package processor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
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

// TestClientRetryDelayShort checks the client's retryer as the SDK uses it: a throttled request waits at most
// sdkBackoffCap before its next attempt, whatever the attempt. The SDK's default waits up to 1 s after a throttle,
// which under a 1 s function timeout spent the whole write budget on one sleep.
func TestClientRetryDelayShort(t *testing.T) {
	client := NewDynamoDBClient(aws.Config{Region: "eu-west-1"})
	throttled := &smithy.GenericAPIError{Code: "ThrottlingException", Message: "rate exceeded"}
	pte := &types.ProvisionedThroughputExceededException{Message: aws.String("rate exceeded")}
	r := client.Options().Retryer
	var longest time.Duration
	for _, err := range []error{throttled, pte, errors.New("connection reset")} {
		for attempt := 1; attempt <= 12; attempt++ {
			for range 50 {
				d, derr := r.RetryDelay(attempt, err)
				if derr != nil {
					t.Fatalf("attempt %d, %v: %v", attempt, err, derr)
				}
				if d < 0 || d > sdkBackoffCap {
					t.Fatalf("attempt %d after %v: waits %v, want at most %v", attempt, err, d, sdkBackoffCap)
				}
				longest = max(longest, d)
			}
		}
	}
	if longest == 0 {
		t.Error("the retryer never waits: no backoff at all")
	}
	if !r.IsErrorRetryable(throttled) || !r.IsErrorRetryable(pte) {
		t.Error("throttling is not retried by the SDK")
	}
	if r.MaxAttempts() < 2 {
		t.Errorf("MaxAttempts %d: the SDK does not retry", r.MaxAttempts())
	}
}
