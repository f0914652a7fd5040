package s3local_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/s3local"
)

// start runs a server with the given buckets and returns an SDK client for it: path-style, static credentials.
func start(t *testing.T, buckets ...string) (*s3local.Server, *s3.Client) {
	t.Helper()
	srv, err := s3local.New(buckets...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "local-secret", "")}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(srv.URL())
		o.UsePathStyle = true
	})
	return srv, client
}

func put(t *testing.T, c *s3.Client, bucket, key, body string) {
	t.Helper()
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Body: strings.NewReader(body), ContentType: aws.String("application/json")}); err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
}

func TestObjectRoundTrip(t *testing.T) {
	_, c := start(t, "failures", "other")
	ctx := context.Background()
	tests := []struct {
		name, bucket, key, body string
	}{
		{name: "nested key", bucket: "failures", key: "aws/lambda/uuid/shardId-000000000000/2024/09/13/2024-09-13T23.06.55-abc", body: `{"payload": "x"}`},
		{name: "spaces and unicode", bucket: "failures", key: "dir with space/ключ+plus=eq", body: "héllo"},
		{name: "empty body", bucket: "other", key: "empty", body: ""},
		{name: "binary body", bucket: "other", key: "bin", body: "\x00\xff\x01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			put(t, c, tt.bucket, tt.key, tt.body)
			get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(tt.bucket), Key: aws.String(tt.key)})
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			got, err := io.ReadAll(get.Body)
			_ = get.Body.Close()
			if err != nil || string(got) != tt.body {
				t.Fatalf("get body %q (%v), want %q", got, err, tt.body)
			}
			if aws.ToString(get.ContentType) != "application/json" {
				t.Errorf("content type %q", aws.ToString(get.ContentType))
			}
			head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(tt.bucket), Key: aws.String(tt.key)})
			if err != nil {
				t.Fatalf("head: %v", err)
			}
			if aws.ToInt64(head.ContentLength) != int64(len(tt.body)) || aws.ToString(head.ETag) != aws.ToString(get.ETag) || head.LastModified == nil {
				t.Errorf("head: length %d etag %s modified %v; want length %d etag %s", aws.ToInt64(head.ContentLength), aws.ToString(head.ETag), head.LastModified, len(tt.body), aws.ToString(get.ETag))
			}
			if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(tt.bucket), Key: aws.String(tt.key)}); err != nil {
				t.Fatalf("delete: %v", err)
			}
			_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(tt.bucket), Key: aws.String(tt.key)})
			var nsk *types.NoSuchKey
			if !errors.As(err, &nsk) {
				t.Errorf("get after delete: %v, want NoSuchKey", err)
			}
		})
	}
}

// code reports whether an error is S3's error of that code (the SDK models NoSuchBucket for few operations).
func code(c string) func(error) bool {
	return func(err error) bool {
		var e smithy.APIError
		return errors.As(err, &e) && e.ErrorCode() == c
	}
}

func TestMissing(t *testing.T) {
	_, c := start(t, "failures")
	ctx := context.Background()
	put(t, c, "failures", "present", "x")
	tests := []struct {
		name string
		call func() error
		want func(error) bool
	}{
		{name: "get missing key", call: func() error {
			_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("failures"), Key: aws.String("absent")})
			return err
		}, want: func(err error) bool { var e *types.NoSuchKey; return errors.As(err, &e) }},
		{name: "head missing key", call: func() error {
			_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("failures"), Key: aws.String("absent")})
			return err
		}, want: func(err error) bool { var e *types.NotFound; return errors.As(err, &e) }},
		{name: "get from missing bucket", call: func() error {
			_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("nope"), Key: aws.String("present")})
			return err
		}, want: code("NoSuchBucket")},
		{name: "list missing bucket", call: func() error {
			_, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("nope")})
			return err
		}, want: code("NoSuchBucket")},
		{name: "put into missing bucket", call: func() error {
			_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("nope"), Key: aws.String("k"), Body: strings.NewReader("x")})
			return err
		}, want: code("NoSuchBucket")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !tt.want(err) {
				t.Errorf("error %v (%T)", err, err)
			}
		})
	}
}

func TestListObjectsV2Pages(t *testing.T) {
	_, c := start(t, "failures")
	ctx := context.Background()
	// Put in an order that is not the keys' order: the listing is sorted by key, as S3's.
	var aKeys []string
	for _, i := range []int{6, 0, 4, 2, 5, 1, 3} {
		put(t, c, "failures", fmt.Sprintf("a/%02d", i), "x")
	}
	for i := range 7 {
		aKeys = append(aKeys, fmt.Sprintf("a/%02d", i))
	}
	put(t, c, "failures", "b/00", "x")
	put(t, c, "failures", "b/sub/01", "x")
	put(t, c, "failures", "top", "x")

	tests := []struct {
		name       string
		in         s3.ListObjectsV2Input
		wantPages  int
		wantKeys   []string
		wantPrefix []string
	}{
		{name: "prefix, 3 a page", in: s3.ListObjectsV2Input{Prefix: aws.String("a/"), MaxKeys: aws.Int32(3)}, wantPages: 3, wantKeys: aKeys},
		{name: "everything, default page", in: s3.ListObjectsV2Input{}, wantPages: 1, wantKeys: append(append([]string{}, aKeys...), "b/00", "b/sub/01", "top")},
		{name: "delimiter, 1 a page", in: s3.ListObjectsV2Input{Delimiter: aws.String("/"), MaxKeys: aws.Int32(1)}, wantPages: 3, wantKeys: []string{"top"}, wantPrefix: []string{"a/", "b/"}},
		{name: "prefix and delimiter", in: s3.ListObjectsV2Input{Prefix: aws.String("b/"), Delimiter: aws.String("/")}, wantPages: 1, wantKeys: []string{"b/00"}, wantPrefix: []string{"b/sub/"}},
		{name: "start after", in: s3.ListObjectsV2Input{Prefix: aws.String("a/"), StartAfter: aws.String("a/04"), MaxKeys: aws.Int32(1)}, wantPages: 2, wantKeys: []string{"a/05", "a/06"}},
		{name: "no match", in: s3.ListObjectsV2Input{Prefix: aws.String("c/")}, wantPages: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.Bucket = aws.String("failures")
			p := s3.NewListObjectsV2Paginator(c, &in)
			var keys, prefixes []string
			pages := 0
			for p.HasMorePages() {
				out, err := p.NextPage(ctx)
				if err != nil {
					t.Fatalf("page %d: %v", pages, err)
				}
				pages++
				if n := len(out.Contents) + len(out.CommonPrefixes); int32(n) != aws.ToInt32(out.KeyCount) {
					t.Errorf("page %d: KeyCount %d, %d entries", pages, aws.ToInt32(out.KeyCount), n)
				}
				for _, o := range out.Contents {
					keys = append(keys, aws.ToString(o.Key))
					if aws.ToInt64(o.Size) != 1 || o.LastModified == nil || aws.ToString(o.ETag) == "" {
						t.Errorf("entry %s: size %d, modified %v, etag %q", aws.ToString(o.Key), aws.ToInt64(o.Size), o.LastModified, aws.ToString(o.ETag))
					}
				}
				for _, cp := range out.CommonPrefixes {
					prefixes = append(prefixes, aws.ToString(cp.Prefix))
				}
				if pages > 20 {
					t.Fatal("the paginator does not end")
				}
			}
			if pages != tt.wantPages || strings.Join(keys, ",") != strings.Join(tt.wantKeys, ",") || strings.Join(prefixes, ",") != strings.Join(tt.wantPrefix, ",") {
				t.Errorf("%d pages, keys %v, prefixes %v; want %d pages, keys %v, prefixes %v", pages, keys, prefixes, tt.wantPages, tt.wantKeys, tt.wantPrefix)
			}
		})
	}
}

// TestRawRequests checks what the SDK client does not send: aws-chunked bodies (the SDKs' streaming uploads), URL
// encoding of listed keys (the AWS CLI asks for it), ListBuckets, and operations not implemented.
func TestRawRequests(t *testing.T) {
	srv, c := start(t, "failures")
	do := func(method, path string, h map[string]string, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	chunked := "5;chunk-signature=abc\r\nhello\r\n6;chunk-signature=def\r\n world\r\n0;chunk-signature=ghi\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
	tests := []struct {
		name, method, path string
		header             map[string]string
		body               string
		wantStatus         int
		wantBody           []string // substrings
	}{
		{name: "aws-chunked put", method: "PUT", path: "/failures/chunked", header: map[string]string{"Content-Encoding": "aws-chunked", "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER"}, body: chunked, wantStatus: 200},
		{name: "aws-chunked get", method: "GET", path: "/failures/chunked", wantStatus: 200, wantBody: []string{"hello world"}},
		{name: "broken aws-chunked put", method: "PUT", path: "/failures/broken", header: map[string]string{"Content-Encoding": "aws-chunked"}, body: "zz\r\nhello", wantStatus: 400, wantBody: []string{"<Code>IncompleteBody</Code>"}},
		{name: "url-encoded listing", method: "GET", path: "/failures?list-type=2&encoding-type=url&prefix=a%20b", wantStatus: 200, wantBody: []string{"<Key>a%20b%2Fc</Key>", "<EncodingType>url</EncodingType>", "<Prefix>a%20b</Prefix>"}},
		{name: "list buckets", method: "GET", path: "/", wantStatus: 200, wantBody: []string{"<ListAllMyBucketsResult", "<Name>failures</Name>"}},
		{name: "head bucket", method: "HEAD", path: "/failures", wantStatus: 200},
		{name: "head missing bucket", method: "HEAD", path: "/nope", wantStatus: 404},
		{name: "list v1 not implemented", method: "GET", path: "/failures", wantStatus: 501, wantBody: []string{"<Code>NotImplemented</Code>"}},
		{name: "multipart not implemented", method: "POST", path: "/failures/k?uploads", wantStatus: 501, wantBody: []string{"<Code>NotImplemented</Code>"}},
		{name: "bad continuation token", method: "GET", path: "/failures?list-type=2&continuation-token=!!", wantStatus: 400, wantBody: []string{"<Code>InvalidArgument</Code>"}},
	}
	put(t, c, "failures", "a b/c", "x")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := do(tt.method, tt.path, tt.header, tt.body)
			if status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", status, tt.wantStatus, body)
			}
			for _, w := range tt.wantBody {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %q: %s", w, body)
				}
			}
		})
	}
	get, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("failures"), Key: aws.String("chunked")})
	if err != nil {
		t.Fatal(err)
	}
	defer get.Body.Close()
	if b, _ := io.ReadAll(get.Body); !bytes.Equal(b, []byte("hello world")) {
		t.Errorf("chunked object through the SDK: %q", b)
	}
}

func TestNewRejectsBadBucketNames(t *testing.T) {
	for _, name := range []string{"", "a/b"} {
		if srv, err := s3local.New(name); err == nil {
			_ = srv.Close()
			t.Errorf("New(%q): no error", name)
		}
	}
}
