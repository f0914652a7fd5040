package processor_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// This file holds the benchmarks of issue 3 (reproduce with scripts/bench.sh) and the helpers the integration tests
// share with them.

// sampleJSON is the seed's sample record.
const sampleJSON = `{"Timestamp": "2024-09-13T23:06:55.934081Z", "Value": 81, "Category": "C"}`

// Names used by the benchmarks and the integration tests.
const (
	benchShard      = "shardId-000000000000"
	benchTable      = "data"
	benchErrorTable = "errors"
	// envPeakRSSEndpoint makes BenchmarkPeakRSS act as the measured child process, writing to this endpoint.
	envPeakRSSEndpoint = "PIPELINE_BENCH_PEAK_RSS_ENDPOINT"
	// peakRSSLine prefixes the child's report line.
	peakRSSLine = "peak-rss-kb:"
)

// benchArrival is the approximate arrival time of every generated record.
func benchArrival() time.Time { return time.Date(2024, 9, 13, 23, 6, 56, 0, time.UTC) }

// buildSeq returns the sequence number of the i-th generated record: 56 digits, so lexical order is numeric order.
func buildSeq(i int) string { return fmt.Sprintf("4959%052d", i+1) }

// buildEvent returns a Kinesis event holding payloads as records 0, 1, ... of one shard.
func buildEvent(payloads ...[]byte) events.KinesisEvent {
	ev := events.KinesisEvent{Records: make([]events.KinesisEventRecord, len(payloads))}
	for i, p := range payloads {
		seq := buildSeq(i)
		ev.Records[i] = events.KinesisEventRecord{
			AwsRegion:      emulators.Region,
			EventID:        benchShard + ":" + seq,
			EventName:      "aws:kinesis:record",
			EventSource:    "aws:kinesis",
			EventSourceArn: "arn:aws:kinesis:us-east-1:123456789012:stream/bench",
			EventVersion:   "1.0",
			Kinesis: events.KinesisRecord{
				ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: benchArrival()},
				Data:                        p,
				PartitionKey:                "pk-" + strconv.Itoa(i%7),
				SequenceNumber:              seq,
				KinesisSchemaVersion:        "1.0",
			},
		}
	}
	return ev
}

// samplePayloads returns n payloads shaped like the sample record, each padded with pad bytes of text.
func samplePayloads(n, pad int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, `{"Timestamp": "2024-09-13T23:06:55.934081Z", "Value": %d, "Category": "%c", "Note": "%s"}`,
			i, 'A'+rune(i%3), strings.Repeat("x", pad))
	}
	return out
}

// newSDKClient returns the processor's DynamoDB client (the real SDK client) for endpoint.
func newSDKClient(endpoint string) *dynamodb.Client {
	return processor.NewDynamoDBClient(emulators.AWSConfig(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

// quiet returns options that write to table and errorTable and keep logs and metrics off the test output (still
// encoded, so their cost counts).
func quiet(table, errorTable string) func(*processor.Options) {
	return func(o *processor.Options) {
		o.TableName = table
		o.ErrorTableName = errorTable
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		o.MetricsWriter = io.Discard
	}
}

func newBenchProcessor(b *testing.B, db processor.DB) *processor.Processor {
	b.Helper()
	p, err := processor.New(db, quiet(benchTable, benchErrorTable))
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// baseline processes a batch the way the AWS sample does: one PutItem per record, in order, stopping at the first
// failure.
func baseline(ctx context.Context, db processor.DB, table string, ev events.KinesisEvent) error {
	for _, r := range ev.Records {
		dec := json.NewDecoder(bytes.NewReader(r.Kinesis.Data))
		dec.UseNumber()
		var data map[string]any
		if err := dec.Decode(&data); err != nil {
			return fmt.Errorf("decode record %s: %w", r.EventID, err)
		}
		item := make(map[string]types.AttributeValue, len(data)+1)
		for k, v := range data {
			av, err := processor.ToAttributeValue(v)
			if err != nil {
				return fmt.Errorf("record %s: attribute %s: %w", r.EventID, k, err)
			}
			item[k] = av
		}
		item["id"] = &types.AttributeValueMemberS{Value: r.EventID}
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
			return fmt.Errorf("put record %s: %w", r.EventID, err)
		}
	}
	return nil
}

// BenchmarkBatch processes 100- and 1000-record batches end to end through the real SDK client against the stand-in
// answering after 5 ms, with the processor and with the sample's one-PutItem-per-record baseline.
func BenchmarkBatch(b *testing.B) {
	for _, n := range []int{100, 1000} {
		ev := buildEvent(samplePayloads(n, 0)...)
		for _, impl := range []string{"processor", "baseline"} {
			b.Run(fmt.Sprintf("records=%d/impl=%s", n, impl), func(b *testing.B) {
				s := dynamostandin.New(dynamostandin.Options{Latency: 5 * time.Millisecond, Discard: true})
				defer s.Close()
				client := newSDKClient(s.URL())
				p := newBenchProcessor(b, client)
				ctx := context.Background()
				b.ReportAllocs()
				iterations := 0
				for b.Loop() {
					iterations++
					if impl == "baseline" {
						if err := baseline(ctx, client, benchTable, ev); err != nil {
							b.Fatal(err)
						}
						continue
					}
					resp, err := p.Handle(ctx, ev)
					if err != nil || len(resp.BatchItemFailures) > 0 {
						b.Fatalf("handle: %v, failures %v", err, resp.BatchItemFailures)
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
				if got, want := s.Stats().ItemsWritten, int64(n*iterations); got != want {
					b.Fatalf("stand-in stored %d items, want %d", got, want)
				}
			})
		}
	}
}

// discardDB accepts every write at once, without I/O.
type discardDB struct{}

func (discardDB) BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return &dynamodb.BatchWriteItemOutput{}, nil
}

func (discardDB) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return &dynamodb.PutItemOutput{}, nil
}

// inMemoryHTTP answers every SDK request with an empty success, without a network: the SDK still serializes, signs
// and deserializes.
type inMemoryHTTP struct{}

func (inMemoryHTTP) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	body := `{"UnprocessedItems":{}}`
	if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".PutItem") {
		body = `{}`
	}
	h := http.Header{}
	h.Set("Content-Type", "application/x-amz-json-1.0")
	return &http.Response{StatusCode: 200, Status: "200 OK", Header: h, Body: io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: r}, nil
}

// BenchmarkHandleCPU measures the processor's CPU cost per record (decode, transform, validate, build the requests)
// on a 1000-record batch of sample-like records, without I/O: db=fake skips the SDK entirely, db=sdk-in-memory
// adds the SDK's serialization and signing over an in-memory HTTP client.
func BenchmarkHandleCPU(b *testing.B) {
	const n = 1000
	ev := buildEvent(samplePayloads(n, 0)...)
	for _, tt := range []struct {
		name string
		db   processor.DB
	}{
		{"db=fake", discardDB{}},
		{"db=sdk-in-memory", processor.NewDynamoDBClient(emulators.AWSConfig(), func(o *dynamodb.Options) {
			o.BaseEndpoint = aws.String("http://127.0.0.1:1")
			o.HTTPClient = inMemoryHTTP{}
		})},
	} {
		b.Run(tt.name, func(b *testing.B) {
			p := newBenchProcessor(b, tt.db)
			ctx := context.Background()
			b.ReportAllocs()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for b.Loop() {
				resp, err := p.Handle(ctx, ev)
				if err != nil || len(resp.BatchItemFailures) > 0 {
					b.Fatalf("handle: %v, failures %v", err, resp.BatchItemFailures)
				}
			}
			runtime.ReadMemStats(&after)
			records := float64(n * b.N)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/records, "ns/record")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/records, "allocs/record")
		})
	}
}

// BenchmarkPeakRSS reports the peak resident memory (VmHWM, Linux) of a process that takes one 1000-record batch of
// ~1 KB records as Lambda delivers it (JSON, through lambda.NewHandler) and writes it through the real SDK client to
// the stand-in. The measured work runs in a child process (this test binary again) so the stand-in's memory is not
// counted. Run it with -benchtime=1x.
func BenchmarkPeakRSS(b *testing.B) {
	const n, pad = 1000, 900
	if endpoint := os.Getenv(envPeakRSSEndpoint); endpoint != "" {
		peakRSSChild(b, endpoint, n, pad)
		return
	}
	s := dynamostandin.New(dynamostandin.Options{Latency: 5 * time.Millisecond, Discard: true})
	defer s.Close()
	var peak, base int64
	for b.Loop() {
		cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^BenchmarkPeakRSS$", "-test.benchtime=1x")
		cmd.Env = append(os.Environ(), envPeakRSSEndpoint+"="+s.URL())
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("child: %v\n%s", err, out)
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		found := false
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), peakRSSLine); ok {
				if _, err := fmt.Sscanf(rest, "%d %d", &peak, &base); err != nil {
					b.Fatalf("child report %q: %v", sc.Text(), err)
				}
				found = true
			}
		}
		if !found {
			b.Fatalf("child printed no %s line:\n%s", peakRSSLine, out)
		}
	}
	if got, want := s.Stats().ItemsWritten, int64(n*b.N); got != want {
		b.Fatalf("stand-in stored %d items, want %d", got, want)
	}
	b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
	b.ReportMetric(float64(base)/1024, "startup-RSS-MiB")
}

// peakRSSChild is the measured side of BenchmarkPeakRSS.
func peakRSSChild(b *testing.B, endpoint string, n, pad int) {
	base, err := vmHWM()
	if err != nil {
		b.Fatal(err)
	}
	p := newBenchProcessor(b, newSDKClient(endpoint))
	payload, err := json.Marshal(buildEvent(samplePayloads(n, pad)...))
	if err != nil {
		b.Fatal(err)
	}
	h := lambda.NewHandler(p.Handle)
	for b.Loop() {
		out, err := h.Invoke(context.Background(), payload)
		if err != nil {
			b.Fatal(err)
		}
		var resp events.KinesisEventResponse
		if err := json.Unmarshal(out, &resp); err != nil || len(resp.BatchItemFailures) > 0 {
			b.Fatalf("response %s: %v", out, err)
		}
	}
	peak, err := vmHWM()
	if err != nil {
		b.Fatal(err)
	}
	fmt.Printf("%s %d %d\n", peakRSSLine, peak, base)
}

// vmHWM returns the process's peak resident set size in KiB, from /proc/self/status.
func vmHWM() (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read peak RSS (Linux only): %w", err)
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmHWM %q: %w", line, err)
			}
			return kb, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}
