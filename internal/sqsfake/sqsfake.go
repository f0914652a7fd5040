// Package sqsfake is an in-memory SQS queue service for tests and local runs: an HTTP server on 127.0.0.1 that
// speaks the SQS JSON protocol (X-Amz-Target "AmazonSQS.<Operation>", application/x-amz-json-1.0) well enough for
// aws-sdk-go-v2's client. Point the client at Server.URL with BaseEndpoint (or AWS_ENDPOINT_URL_SQS) and static
// credentials; signatures are not checked.
//
// It answers CreateQueue, GetQueueUrl, GetQueueAttributes (the approximate message counts), SendMessage,
// ReceiveMessage (visibility timeouts, receive counts; WaitTimeSeconds is not waited), DeleteMessage and
// ChangeMessageVisibility. Receipt handles change on every receive, as in SQS: an old handle cannot delete a message
// received again since. No SQS emulator speaks the current SDK's protocol, hence this.
package sqsfake

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	srv *http.Server
	url string

	mu     sync.Mutex
	queues map[string]*queue // by name
	seq    int
	now    func() time.Time
}

type queue struct {
	name string
	msgs []*message
}

type message struct {
	id, body, handle string
	visibleAt        time.Time
	receives         int
}

// New starts a Server on a free port of 127.0.0.1. Call Close when done.
func New() (*Server, error) {
	return Listen("127.0.0.1:0")
}

// Listen starts a Server on addr (host:port). Call Close when done.
func Listen(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sqsfake: listen: %w", err)
	}
	s := &Server{queues: map[string]*queue{}, now: time.Now, url: "http://" + ln.Addr().String()}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL returns the server's base URL, "http://127.0.0.1:<port>".
func (s *Server) URL() string { return s.url }

// Close stops the server.
func (s *Server) Close() { _ = s.srv.Close() }

// QueueURL returns the URL of the queue named name (whether or not it exists).
func (s *Server) QueueURL(name string) string { return s.url + "/000000000000/" + name }

// CreateQueue creates the queue named name if it does not exist and returns its URL.
func (s *Server) CreateQueue(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queues[name] == nil {
		s.queues[name] = &queue{name: name}
	}
	return s.QueueURL(name)
}

// Send adds a message to the queue named name, creating it if needed, and returns the message id.
func (s *Server) Send(name, body string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[name]
	if q == nil {
		q = &queue{name: name}
		s.queues[name] = q
	}
	return s.sendLocked(q, body)
}

func (s *Server) sendLocked(q *queue, body string) string {
	s.seq++
	m := &message{id: fmt.Sprintf("00000000-0000-4000-8000-%012d", s.seq), body: body}
	q.msgs = append(q.msgs, m)
	return m.id
}

// Message is a message held by the Server.
type Message struct {
	// ID is the message id.
	ID string
	// Body is the message body.
	Body string
	// Receives counts how often it was received.
	Receives int
	// Visible reports whether it is visible now.
	Visible bool
}

// Messages returns the messages of the queue named name, in the order sent.
func (s *Server) Messages(name string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[name]
	if q == nil {
		return nil
	}
	now := s.now()
	out := make([]Message, len(q.msgs))
	for i, m := range q.msgs {
		out[i] = Message{ID: m.id, Body: m.body, Receives: m.receives, Visible: !now.Before(m.visibleAt)}
	}
	return out
}

type apiError struct {
	status int
	code   string
	msg    string
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.")
	if r.Method != http.MethodPost || !ok {
		writeErr(w, &apiError{400, "InvalidAction", "expected a POST with X-Amz-Target AmazonSQS.<Operation>"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeErr(w, &apiError{400, "InvalidParameterValue", err.Error()})
		return
	}
	var in map[string]json.RawMessage
	if err := json.Unmarshal(body, &in); err != nil {
		writeErr(w, &apiError{400, "InvalidParameterValue", "body is not a JSON object"})
		return
	}
	out, aerr := s.answer(op, in)
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	b, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	_, _ = w.Write(b)
}

func writeErr(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("x-amzn-query-error", e.code+";Sender")
	w.WriteHeader(e.status)
	b, _ := json.Marshal(map[string]string{"__type": "com.amazonaws.sqs#" + e.code, "message": e.msg})
	_, _ = w.Write(b)
}

func str(in map[string]json.RawMessage, k string) string {
	var s string
	_ = json.Unmarshal(in[k], &s)
	return s
}

func num(in map[string]json.RawMessage, k string, def int) int {
	raw, ok := in[k]
	if !ok {
		return def
	}
	var n int
	if json.Unmarshal(raw, &n) != nil {
		return def
	}
	return n
}

func (s *Server) queueOf(in map[string]json.RawMessage) (*queue, *apiError) {
	u := str(in, "QueueUrl")
	name := u[strings.LastIndex(u, "/")+1:]
	q := s.queues[name]
	if q == nil {
		return nil, &apiError{400, "QueueDoesNotExist", "The specified queue does not exist."}
	}
	return q, nil
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (s *Server) answer(op string, in map[string]json.RawMessage) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	switch op {
	case "CreateQueue":
		name := str(in, "QueueName")
		if name == "" {
			return nil, &apiError{400, "InvalidParameterValue", "QueueName is empty"}
		}
		if s.queues[name] == nil {
			s.queues[name] = &queue{name: name}
		}
		return map[string]string{"QueueUrl": s.QueueURL(name)}, nil
	case "GetQueueUrl":
		name := str(in, "QueueName")
		if s.queues[name] == nil {
			return nil, &apiError{400, "QueueDoesNotExist", "The specified queue does not exist."}
		}
		return map[string]string{"QueueUrl": s.QueueURL(name)}, nil
	case "GetQueueAttributes":
		q, err := s.queueOf(in)
		if err != nil {
			return nil, err
		}
		visible, hidden := 0, 0
		for _, m := range q.msgs {
			if now.Before(m.visibleAt) {
				hidden++
			} else {
				visible++
			}
		}
		return map[string]any{"Attributes": map[string]string{
			"ApproximateNumberOfMessages":           strconv.Itoa(visible),
			"ApproximateNumberOfMessagesNotVisible": strconv.Itoa(hidden),
		}}, nil
	case "SendMessage":
		q, err := s.queueOf(in)
		if err != nil {
			return nil, err
		}
		body := str(in, "MessageBody")
		if body == "" {
			return nil, &apiError{400, "InvalidParameterValue", "MessageBody is empty"}
		}
		id := s.sendLocked(q, body)
		return map[string]string{"MessageId": id, "MD5OfMessageBody": md5hex(body)}, nil
	case "ReceiveMessage":
		q, err := s.queueOf(in)
		if err != nil {
			return nil, err
		}
		max := num(in, "MaxNumberOfMessages", 1)
		if max < 1 || max > 10 {
			return nil, &apiError{400, "InvalidParameterValue", "MaxNumberOfMessages must be between 1 and 10"}
		}
		vis := time.Duration(num(in, "VisibilityTimeout", 30)) * time.Second
		msgs := []map[string]any{}
		for _, m := range q.msgs {
			if len(msgs) == max {
				break
			}
			if now.Before(m.visibleAt) {
				continue
			}
			s.seq++
			m.receives++
			m.handle = fmt.Sprintf("%s#%d", m.id, s.seq)
			m.visibleAt = now.Add(vis)
			msgs = append(msgs, map[string]any{
				"MessageId": m.id, "ReceiptHandle": m.handle, "Body": m.body, "MD5OfBody": md5hex(m.body),
				"Attributes": map[string]string{"ApproximateReceiveCount": strconv.Itoa(m.receives)},
			})
		}
		return map[string]any{"Messages": msgs}, nil
	case "DeleteMessage", "ChangeMessageVisibility":
		q, err := s.queueOf(in)
		if err != nil {
			return nil, err
		}
		h := str(in, "ReceiptHandle")
		for i, m := range q.msgs {
			if m.handle != h || h == "" {
				continue
			}
			if op == "DeleteMessage" {
				q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
			} else {
				m.visibleAt = now.Add(time.Duration(num(in, "VisibilityTimeout", 0)) * time.Second)
			}
			return map[string]any{}, nil
		}
		return nil, &apiError{400, "ReceiptHandleIsInvalid", "The input receipt handle is invalid."}
	}
	return nil, &apiError{400, "UnsupportedOperation", "sqsfake does not answer " + op}
}
