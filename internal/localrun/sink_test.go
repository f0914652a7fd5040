package localrun_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/localrun"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive"
)

// localS3 starts an in-process S3 server holding bucket and returns a client for it.
func localS3(t *testing.T, bucket string) *s3.Client {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDLOCAL", "local-secret", ""),
	})
}

func TestS3Sink(t *testing.T) {
	const uuid = "a1b2c3d4-5678-90ab-cdef-111122223333"
	tests := []struct {
		name string
		opts func(*localrun.Options)
		// wantKeys are the top-level keys of the object, in order.
		wantKeys []string
		// wantInvokes is the approximateInvokeCount; wantResponse the responseContext (nil: absent).
		wantInvokes  int
		wantResponse map[string]any
	}{
		{"retries exhausted", func(o *localrun.Options) { o.MaximumRetryAttempts = 1 },
			[]string{"requestContext", "responseContext", "version", "timestamp", "KinesisBatchInfo", "payload"},
			2, map[string]any{"statusCode": float64(200), "executedVersion": "$LATEST", "functionError": "Unhandled"}},
		{"record age exceeded", func(o *localrun.Options) { o.MaximumRecordAge = time.Minute },
			[]string{"requestContext", "version", "timestamp", "KinesisBatchInfo", "payload"}, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			client := localS3(t, "failures")
			kc := newFakeKinesis([]string{`{"n":0}`, `{"n":1}`, `{"n":2}`})
			fn := &scripted{script: erroring(0, 1, 2)}
			r, err := localrun.New(kc, fn, func(o *localrun.Options) {
				o.StreamName, o.PollInterval, o.RetryDelay = "s", time.Millisecond, time.Microsecond
				o.Now = func() time.Time { return failedAt }
				o.OnFailure = localrun.S3Sink{Client: client, Bucket: "failures", MappingUUID: uuid}
			}, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			drainFake(t, r)

			list, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("failures")})
			if err != nil {
				t.Fatal(err)
			}
			if len(list.Contents) != 1 {
				t.Fatalf("%d objects, want 1", len(list.Contents))
			}
			key := aws.ToString(list.Contents[0].Key)
			// aws/lambda/<mapping UUID>/<shard id>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<random UUID>, at the failure time.
			layout := regexp.MustCompile(`^aws/lambda/` + uuid + `/shardId-000000000000/2025/11/25/2025-11-25T20\.03\.18-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
			if !layout.MatchString(key) {
				t.Errorf("key %s does not follow the documented layout", key)
			}
			obj, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("failures"), Key: aws.String(key)})
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(obj.Body)
			obj.Body.Close()
			if err != nil {
				t.Fatal(err)
			}

			// The whole invocation record, its keys in AWS's order, the event as an escaped JSON string.
			if got := topKeys(t, body); !slices.Equal(got, tt.wantKeys) {
				t.Errorf("keys %v, want %v", got, tt.wantKeys)
			}
			var doc struct {
				RequestContext  map[string]any  `json:"requestContext"`
				ResponseContext map[string]any  `json:"responseContext"`
				Payload         json.RawMessage `json:"payload"`
			}
			if err := json.Unmarshal(body, &doc); err != nil {
				t.Fatal(err)
			}
			if doc.RequestContext["approximateInvokeCount"] != float64(tt.wantInvokes) {
				t.Errorf("requestContext %v, want %d invocations", doc.RequestContext, tt.wantInvokes)
			}
			if tt.wantResponse != nil && !mapsEqual(doc.ResponseContext, tt.wantResponse) {
				t.Errorf("responseContext %v, want %v", doc.ResponseContext, tt.wantResponse)
			}
			var payload string
			if err := json.Unmarshal(doc.Payload, &payload); err != nil {
				t.Fatalf("payload %s is not a JSON string: %v", doc.Payload, err)
			}
			var ev events.KinesisEvent
			if err := json.Unmarshal([]byte(payload), &ev); err != nil {
				t.Fatalf("payload string is not an event: %v", err)
			}
			var seqs, data []string
			for _, rec := range ev.Records {
				seqs = append(seqs, rec.Kinesis.SequenceNumber)
				data = append(data, string(rec.Kinesis.Data))
			}
			if !slices.Equal(seqs, []string{seqNumber(0), seqNumber(1), seqNumber(2)}) ||
				!slices.Equal(data, []string{`{"n":0}`, `{"n":1}`, `{"n":2}`}) || ev.Records[0].EventID != "shardId-000000000000:"+seqNumber(0) {
				t.Errorf("payload holds %v with data %v", seqs, data)
			}

			// The redrive command reads the object, payload included.
			rec, err := redrive.ParseFailureRecord(body)
			if err != nil || rec.Payload == nil || len(rec.Payload.Records) != 3 || rec.KinesisBatchInfo.BatchSize != 3 {
				t.Errorf("redrive reads %+v, %v", rec, err)
			}
		})
	}
}

func TestS3SinkNeedsItsSettings(t *testing.T) {
	err := localrun.S3Sink{Bucket: "b"}.Send(context.Background(), redrive.FailureRecord{})
	if err == nil {
		t.Fatal("Send without a client and a mapping UUID succeeded")
	}
	err = localrun.S3Sink{Client: failingS3{}, Bucket: "b", MappingUUID: "u"}.Send(context.Background(),
		redrive.FailureRecord{Timestamp: "2025-11-25T20:03:18.000Z"})
	if err == nil || !errors.Is(err, errS3Down) {
		t.Errorf("Send = %v, want the client's error wrapped", err)
	}
}

var errS3Down = errors.New("s3 down")

type failingS3 struct{}

func (failingS3) PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	return nil, errS3Down
}

// topKeys returns the keys of a JSON object in document order.
func topKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %s", b)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func mapsEqual(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
