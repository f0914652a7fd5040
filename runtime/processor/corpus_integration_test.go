//go:build integration

package processor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/emulators"
)

// TestIntegrationCorpus replays the committed seed corpus of FuzzHandle and FuzzHandleAggregate against dynalite
// (through the stand-in for the cases with injected faults) and checks, by reading dynalite, that every acknowledged
// record is stored exactly once, value for value (numbers as DynamoDB normalizes them), in the data table or the
// error table. dynalite sizes strings by JavaScript length: it is an oracle for keys and values, not for size
// limits (the stand-in is, in the fuzz targets).
func TestIntegrationCorpus(t *testing.T) {
	endpoint := emulators.Dynalite(t)
	client := emulators.DynamoDBClient(endpoint)
	standins := map[byte]*dynamostandin.Server{}
	dynalite := func(mode byte) backend {
		url := endpoint
		if f := mode & modeFaults; f == 1 || f == 2 {
			s := standins[f]
			if s == nil {
				opts := faultOptions(mode)
				opts.Upstream = endpoint
				s = dynamostandin.New(opts)
				t.Cleanup(s.Close)
				standins[f] = s
			}
			url = s.URL()
		}
		return backend{
			endpoint: url,
			tables: func(t testing.TB) (string, string) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				data, errs := emulators.UniqueName("data"), emulators.UniqueName("errors")
				for _, name := range []string{data, errs} {
					if err := emulators.CreateTable(ctx, client, name); err != nil {
						t.Fatal(err)
					}
				}
				return data, errs
			},
			read: func(t testing.TB, table string) map[string]Item {
				return scanByID(t, client, table)
			},
		}
	}
	for _, target := range []string{"FuzzHandle", "FuzzHandleAggregate"} {
		files, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no corpus for %s: %v", target, err)
		}
		for _, file := range files {
			t.Run(target+"/"+filepath.Base(file), func(t *testing.T) {
				vals, err := readCorpusFile(file)
				if err != nil {
					t.Fatal(err)
				}
				c, err := corpusCase(target, vals)
				if err != nil {
					t.Fatal(err)
				}
				runCase(t, c, dynalite(c.mode))
			})
		}
	}
}

// corpusCase maps a corpus entry to the case its fuzz target runs.
func corpusCase(target string, vals []any) (handleCase, error) {
	switch target {
	case "FuzzHandle":
		payload, ok1 := vals[0].([]byte)
		pk, ok2 := vals[1].(string)
		shape, ok3 := vals[2].(byte)
		mode, ok4 := vals[3].(byte)
		if len(vals) != 4 || !ok1 || !ok2 || !ok3 || !ok4 {
			return handleCase{}, fmt.Errorf("want []byte, string, byte, byte; have %T", vals)
		}
		return handleCase{payload: payload, pk: pk, shape: shape, mode: mode}, nil
	case "FuzzHandleAggregate":
		payload, ok1 := vals[0].([]byte)
		pk, ok2 := vals[1].(string)
		mode, ok3 := vals[2].(byte)
		if len(vals) != 3 || !ok1 || !ok2 || !ok3 {
			return handleCase{}, fmt.Errorf("want []byte, string, byte; have %T", vals)
		}
		shape := byte(shapeAggregate)
		if mode&0x80 != 0 {
			shape |= shapeTwoShards
		}
		return handleCase{payload: payload, pk: pk, shape: shape, mode: mode &^ 0x80}, nil
	}
	return handleCase{}, fmt.Errorf("unknown fuzz target %s", target)
}

// readCorpusFile reads a file in Go's fuzz corpus format ("go test fuzz v1", then one value per line) holding
// []byte, string and byte values.
func readCorpusFile(path string) ([]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) == 0 || lines[0] != "go test fuzz v1" {
		return nil, fmt.Errorf("%s: not a fuzz corpus file", path)
	}
	var out []any
	for _, line := range lines[1:] {
		typ, lit, ok := strings.Cut(line, "(")
		if !ok || !strings.HasSuffix(lit, ")") {
			return nil, fmt.Errorf("%s: malformed line %.40q", path, line)
		}
		s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if err != nil {
			return nil, fmt.Errorf("%s: %.40q: %w", path, line, err)
		}
		switch typ {
		case "[]byte":
			out = append(out, []byte(s))
		case "string":
			out = append(out, s)
		case "byte":
			r, _ := utf8.DecodeRuneInString(s) // a char literal such as '\x80' unquotes to the rune's UTF-8
			if r > 0xff {
				return nil, fmt.Errorf("%s: byte %q out of range", path, s)
			}
			out = append(out, byte(r))
		default:
			return nil, fmt.Errorf("%s: unsupported type %s", path, typ)
		}
	}
	return out, nil
}

// scanByID returns every item of table keyed by its string "id", read back from the database.
func scanByID(t testing.TB, db *dynamodb.Client, table string) map[string]Item {
	t.Helper()
	out := map[string]Item{}
	pages := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatalf("scan %s: %v", table, err)
		}
		for _, it := range page.Items {
			id, ok := it["id"].(*types.AttributeValueMemberS)
			if !ok {
				t.Fatalf("scan %s: item without a string id", table)
			}
			out[id.Value] = it
		}
	}
	return out
}
