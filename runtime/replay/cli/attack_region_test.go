package cli

import (
	"context"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// TestAttackTablesInTheStreamsRegion: the pipeline's function writes its tables in its own region, the stream's.
// With a default region elsewhere (an operator's profile), the replay read the pinned stream in its region but
// wrote items to a table of the same name in the default region: another pipeline's table, when one exists. The
// region each request is signed for is read from the request itself.
func TestAttackTablesInTheStreamsRegion(t *testing.T) {
	var mu sync.Mutex
	scopes := map[string]string{} // service -> credential scope of the last request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		if _, cred, ok := strings.Cut(auth, "Credential="); ok {
			parts := strings.Split(strings.SplitN(cred, ",", 2)[0], "/")
			if len(parts) >= 4 {
				mu.Lock()
				scopes[parts[3]] = parts[2]
				mu.Unlock()
			}
		}
		body := []byte(`{"__type":"com.amazon.coral.validate#ValidationException","message":"stand-in"}`)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10))
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_DYNAMODB": srv.URL, "AWS_ENDPOINT_URL_KINESIS": srv.URL, "AWS_ENDPOINT_URL_S3": srv.URL,
		"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_PROFILE": "", "AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "1",
	} {
		t.Setenv(k, v)
	}
	ctx := context.Background()
	c, err := defaultClients(ctx, "eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.replay.Kinesis.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	_, _ = c.replay.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("t"), Item: map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: "x"}}})
	mu.Lock()
	defer mu.Unlock()
	for _, service := range []string{"kinesis", "dynamodb"} {
		if got := scopes[service]; got != "eu-west-1" {
			t.Errorf("%s requests signed for region %q, want the stream's eu-west-1 (all scopes: %v)", service, got, scopes)
		}
	}
}
