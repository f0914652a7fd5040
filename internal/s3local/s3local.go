// Package s3local is a minimal S3-compatible server for tests and local runs: an HTTP server on 127.0.0.1 that
// keeps objects in memory and answers path-style requests (http://127.0.0.1:PORT/BUCKET/KEY) well enough for
// aws-sdk-go-v2's S3 client (UsePathStyle, or an endpoint that is an IP address, which the SDK addresses path-style)
// and for the AWS CLI with --endpoint-url. Credentials are accepted as given: signatures are not checked.
//
// Buckets are created up front (New, Listen). It answers ListBuckets, HeadBucket, GetBucketLocation, ListObjectsV2
// (prefix, delimiter, start-after, continuation token, max-keys, encoding-type=url), PutObject (plain or aws-chunked
// bodies), GetObject, HeadObject and DeleteObject, with S3's XML errors (NoSuchBucket, NoSuchKey). Not answered:
// multipart uploads, copies, ranges, versions, ACLs, tags; they get NotImplemented.
package s3local

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxObjectSize is the largest object body PutObject accepts.
const MaxObjectSize = 64 << 20

const xmlns = "http://s3.amazonaws.com/doc/2006-03-01/"

// Server is a running S3 server. Its methods are safe for concurrent use.
type Server struct {
	srv *http.Server
	url string

	mu      sync.Mutex
	buckets map[string]*bucket
	seq     int
}

type bucket struct {
	created time.Time
	objects map[string]*object
}

type object struct {
	body        []byte
	etag        string // quoted MD5 of body
	contentType string
	modified    time.Time
}

// New starts a Server with the given buckets on a free port of 127.0.0.1. Call Close when done.
func New(buckets ...string) (*Server, error) {
	return Listen("127.0.0.1:0", buckets...)
}

// Listen starts a Server with the given buckets on addr (host:port). Call Close when done.
func Listen(addr string, buckets ...string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("s3local: listen: %w", err)
	}
	s := &Server{buckets: map[string]*bucket{}, url: "http://" + ln.Addr().String()}
	now := time.Now().UTC()
	for _, b := range buckets {
		if b == "" || strings.Contains(b, "/") {
			_ = ln.Close()
			return nil, fmt.Errorf("s3local: bucket name %q is not valid", b)
		}
		s.buckets[b] = &bucket{created: now, objects: map[string]*object{}}
	}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is the server's endpoint, http://127.0.0.1:PORT: the SDK's BaseEndpoint, AWS_ENDPOINT_URL_S3, or the AWS
// CLI's --endpoint-url.
func (s *Server) URL() string { return s.url }

// Close stops the server; the objects are gone.
func (s *Server) Close() error {
	if err := s.srv.Close(); err != nil {
		return fmt.Errorf("s3local: close: %w", err)
	}
	return nil
}

// s3Error is S3's error document.
type s3Error struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource,omitempty"`
	RequestID string   `xml:"RequestId"`
}

func (s *Server) requestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("%016X", s.seq)
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	writeXML(w, s3Error{Code: code, Message: msg, Resource: r.URL.Path, RequestID: w.Header().Get("x-amz-request-id")})
}

func writeXML(w io.Writer, v any) {
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(v)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-amz-request-id", s.requestID())
	path := strings.TrimPrefix(r.URL.Path, "/")
	name, key, hasKey := strings.Cut(path, "/")
	switch {
	case name == "":
		if r.Method != http.MethodGet {
			s.fail(w, r, http.StatusMethodNotAllowed, "MethodNotAllowed", "the method is not allowed against this resource")
			return
		}
		s.listBuckets(w)
	case !hasKey || key == "":
		s.serveBucket(w, r, name)
	default:
		s.serveObject(w, r, name, key)
	}
}

type listBucketsResult struct {
	XMLName xml.Name     `xml:"ListAllMyBucketsResult"`
	Xmlns   string       `xml:"xmlns,attr"`
	Owner   owner        `xml:"Owner"`
	Buckets []bucketInfo `xml:"Buckets>Bucket"`
}

type owner struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName"`
}

type bucketInfo struct {
	Name         string `xml:"Name"`
	CreationDate string `xml:"CreationDate"`
}

func (s *Server) listBuckets(w http.ResponseWriter) {
	s.mu.Lock()
	res := listBucketsResult{Xmlns: xmlns, Owner: owner{ID: "local", DisplayName: "local"}}
	for name, b := range s.buckets {
		res.Buckets = append(res.Buckets, bucketInfo{Name: name, CreationDate: timestamp(b.created)})
	}
	s.mu.Unlock()
	sort.Slice(res.Buckets, func(i, j int) bool { return res.Buckets[i].Name < res.Buckets[j].Name })
	w.Header().Set("Content-Type", "application/xml")
	writeXML(w, res)
}

func (s *Server) serveBucket(w http.ResponseWriter, r *http.Request, name string) {
	s.mu.Lock()
	_, ok := s.buckets[name]
	s.mu.Unlock()
	if !ok {
		s.fail(w, r, http.StatusNotFound, "NoSuchBucket", "the specified bucket does not exist")
		return
	}
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodHead:
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodGet && q.Has("location"):
		w.Header().Set("Content-Type", "application/xml")
		writeXML(w, struct {
			XMLName xml.Name `xml:"LocationConstraint"`
			Xmlns   string   `xml:"xmlns,attr"`
		}{Xmlns: xmlns})
	case r.Method == http.MethodGet && q.Get("list-type") == "2" && onlyListParams(q):
		s.listObjectsV2(w, r, name)
	default:
		s.fail(w, r, http.StatusNotImplemented, "NotImplemented", "s3local does not implement this bucket operation")
	}
}

// onlyListParams reports whether q holds only parameters of ListObjectsV2 (no subresource, which is not implemented).
func onlyListParams(q url.Values) bool {
	for k := range q {
		switch k {
		case "list-type", "prefix", "delimiter", "continuation-token", "start-after", "max-keys", "encoding-type", "fetch-owner", "x-id":
		default:
			return false
		}
	}
	return true
}

type listResult struct {
	XMLName               xml.Name       `xml:"ListBucketResult"`
	Xmlns                 string         `xml:"xmlns,attr"`
	Name                  string         `xml:"Name"`
	Prefix                string         `xml:"Prefix"`
	Delimiter             string         `xml:"Delimiter,omitempty"`
	StartAfter            string         `xml:"StartAfter,omitempty"`
	ContinuationToken     string         `xml:"ContinuationToken,omitempty"`
	NextContinuationToken string         `xml:"NextContinuationToken,omitempty"`
	KeyCount              int            `xml:"KeyCount"`
	MaxKeys               int            `xml:"MaxKeys"`
	EncodingType          string         `xml:"EncodingType,omitempty"`
	IsTruncated           bool           `xml:"IsTruncated"`
	Contents              []listEntry    `xml:"Contents"`
	CommonPrefixes        []commonPrefix `xml:"CommonPrefixes"`
}

type listEntry struct {
	Key          string `xml:"Key"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int    `xml:"Size"`
	StorageClass string `xml:"StorageClass"`
}

type commonPrefix struct {
	Prefix string `xml:"Prefix"`
}

func (s *Server) listObjectsV2(w http.ResponseWriter, r *http.Request, name string) {
	q := r.URL.Query()
	prefix, delim, startAfter, token := q.Get("prefix"), q.Get("delimiter"), q.Get("start-after"), q.Get("continuation-token")
	maxKeys := 1000
	if v := q.Get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.fail(w, r, http.StatusBadRequest, "InvalidArgument", "max-keys must be a non-negative integer")
			return
		}
		maxKeys = min(n, 1000)
	}
	encoding := q.Get("encoding-type")
	if encoding != "" && encoding != "url" {
		s.fail(w, r, http.StatusBadRequest, "InvalidArgument", "encoding-type must be url")
		return
	}
	// The token names the last entry returned: "K" and a key, or "C" and a common prefix (whose keys are all
	// returned, so skipped).
	after, skip := startAfter, ""
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || len(b) < 2 || (b[0] != 'K' && b[0] != 'C') {
			s.fail(w, r, http.StatusBadRequest, "InvalidArgument", "the continuation token provided is incorrect")
			return
		}
		after = string(b[1:])
		if b[0] == 'C' {
			skip = after
		}
	}

	s.mu.Lock()
	b := s.buckets[name]
	keys := make([]string, 0, len(b.objects))
	for k := range b.objects {
		if strings.HasPrefix(k, prefix) && k > after {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	enc := func(v string) string {
		if encoding == "url" {
			return strings.ReplaceAll(url.QueryEscape(v), "+", "%20")
		}
		return v
	}
	res := listResult{Xmlns: xmlns, Name: name, Prefix: enc(prefix), Delimiter: enc(delim), StartAfter: enc(startAfter),
		ContinuationToken: token, MaxKeys: maxKeys, EncodingType: encoding}
	last := ""
	for _, k := range keys {
		if skip != "" && strings.HasPrefix(k, skip) {
			continue
		}
		if res.KeyCount == maxKeys {
			res.IsTruncated = true
			break
		}
		if delim != "" {
			if i := strings.Index(k[len(prefix):], delim); i >= 0 {
				cp := k[:len(prefix)+i+len(delim)]
				res.CommonPrefixes = append(res.CommonPrefixes, commonPrefix{Prefix: enc(cp)})
				res.KeyCount++
				skip, last = cp, "C"+cp
				continue
			}
		}
		o := b.objects[k]
		res.Contents = append(res.Contents, listEntry{Key: enc(k), LastModified: timestamp(o.modified), ETag: o.etag,
			Size: len(o.body), StorageClass: "STANDARD"})
		res.KeyCount++
		last = "K" + k
	}
	s.mu.Unlock()
	if res.IsTruncated {
		res.NextContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(last))
	}
	w.Header().Set("Content-Type", "application/xml")
	writeXML(w, res)
}

func (s *Server) serveObject(w http.ResponseWriter, r *http.Request, name, key string) {
	s.mu.Lock()
	b, ok := s.buckets[name]
	s.mu.Unlock()
	if !ok {
		s.fail(w, r, http.StatusNotFound, "NoSuchBucket", "the specified bucket does not exist")
		return
	}
	for k := range r.URL.Query() {
		if k != "x-id" { // the SDK names the operation in x-id
			s.fail(w, r, http.StatusNotImplemented, "NotImplemented", "s3local does not implement the object subresource "+k)
			return
		}
	}
	switch r.Method {
	case http.MethodPut:
		if r.Header.Get("x-amz-copy-source") != "" {
			s.fail(w, r, http.StatusNotImplemented, "NotImplemented", "s3local does not implement CopyObject")
			return
		}
		body, err := readBody(r)
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				s.fail(w, r, http.StatusBadRequest, "EntityTooLarge", "the object exceeds the maximum size s3local accepts")
				return
			}
			s.fail(w, r, http.StatusBadRequest, "IncompleteBody", err.Error())
			return
		}
		sum := md5.Sum(body)
		o := &object{body: body, etag: `"` + hex.EncodeToString(sum[:]) + `"`, contentType: r.Header.Get("Content-Type"), modified: time.Now().UTC()}
		if o.contentType == "" {
			o.contentType = "binary/octet-stream"
		}
		s.mu.Lock()
		b.objects[key] = o
		s.mu.Unlock()
		w.Header().Set("ETag", o.etag)
		w.WriteHeader(http.StatusOK)
	case http.MethodGet, http.MethodHead:
		s.mu.Lock()
		o, ok := b.objects[key]
		s.mu.Unlock()
		if !ok {
			s.fail(w, r, http.StatusNotFound, "NoSuchKey", "the specified key does not exist")
			return
		}
		h := w.Header()
		h.Set("Content-Type", o.contentType)
		h.Set("Content-Length", strconv.Itoa(len(o.body)))
		h.Set("ETag", o.etag)
		h.Set("Last-Modified", o.modified.Format(http.TimeFormat))
		h.Set("Accept-Ranges", "bytes")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(o.body)
		}
	case http.MethodDelete:
		s.mu.Lock()
		delete(b.objects, key)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		s.fail(w, r, http.StatusMethodNotAllowed, "MethodNotAllowed", "the method is not allowed against this resource")
	}
}

// readBody reads a PutObject body: as sent, or decoded from aws-chunked encoding (the SDKs' streaming uploads,
// with or without chunk signatures and trailing checksums).
func readBody(r *http.Request) ([]byte, error) {
	body := http.MaxBytesReader(nil, r.Body, MaxObjectSize+1<<20)
	chunked := strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") ||
		strings.HasPrefix(r.Header.Get("x-amz-content-sha256"), "STREAMING-")
	var out []byte
	var err error
	if chunked {
		out, err = decodeChunked(bufio.NewReader(body))
	} else {
		out, err = io.ReadAll(body)
	}
	if err != nil {
		return nil, err
	}
	if len(out) > MaxObjectSize {
		return nil, &http.MaxBytesError{Limit: MaxObjectSize}
	}
	return out, nil
}

// decodeChunked decodes aws-chunked: "<hex size>[;chunk-signature=...]\r\n<data>\r\n" chunks ending with a chunk of
// size 0, then optional trailer lines.
func decodeChunked(r *bufio.Reader) ([]byte, error) {
	var out bytes.Buffer
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("aws-chunked body: chunk header: %w", err)
		}
		sizeText, _, _ := strings.Cut(strings.TrimRight(line, "\r\n"), ";")
		size, err := strconv.ParseInt(strings.TrimSpace(sizeText), 16, 64)
		if err != nil || size < 0 || size > MaxObjectSize {
			return nil, fmt.Errorf("aws-chunked body: chunk size %q", sizeText)
		}
		if size == 0 {
			return out.Bytes(), nil // trailers, if any, are not checked
		}
		if _, err := io.CopyN(&out, r, size); err != nil {
			return nil, fmt.Errorf("aws-chunked body: chunk data: %w", err)
		}
		if out.Len() > MaxObjectSize {
			return nil, &http.MaxBytesError{Limit: MaxObjectSize}
		}
		if crlf, err := r.ReadString('\n'); err != nil || strings.TrimRight(crlf, "\r\n") != "" {
			return nil, fmt.Errorf("aws-chunked body: chunk not terminated by CRLF")
		}
	}
}

func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
