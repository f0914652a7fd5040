package selftest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/cfn"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
)

// Stacks reads the stack's status. *cloudformation.Client satisfies it.
type Stacks interface {
	DescribeStacks(ctx context.Context, in *cloudformation.DescribeStacksInput, optFns ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error)
}

var _ Stacks = (*cloudformation.Client)(nil)

// responseReserve is kept from the invocation's deadline for the cleanup (DefaultCleanupTimeout), the
// evidence and the response to CloudFormation: the construct gives the function this much beyond SelfTestTimeout.
const responseReserve = 40 * time.Second

// responseLimit is CloudFormation's limit on a custom resource's response body, in bytes as sent (JSON encoded).
const responseLimit = 4096

// Handler is the self-test function's handler (runtime/cmd/selftest): a CloudFormation custom resource request
// (the construct's SelfTest resource) is answered as such: Create and Update run the self-test and report FAILED
// with the cause when it fails; Delete always succeeds, and so does any request while the stack rolls back
// (DescribeStacks says *_ROLLBACK_IN_PROGRESS), since a failure then would leave the stack in UPDATE_ROLLBACK_FAILED.
// Any other invocation (`aws lambda invoke`, a schedule) runs the self-test and returns the Report, or fails with the
// cause.
type Handler struct {
	// Run runs the self-test with extra options (Start: Run with FromEnvironment's options and AWS clients).
	Run func(ctx context.Context, fns ...func(*Options)) (*Report, error)
	// Stacks reads the stack's status for custom resource requests.
	Stacks Stacks
	// Logger receives a line per invocation. Required.
	Logger *slog.Logger
	// Respond wraps the custom resource function. Default: Answer, which sends the response to the request's
	// presigned URL within the invocation's deadline.
	Respond func(cfn.CustomResourceFunction) cfn.CustomResourceLambdaFunction
}

// Invoke routes a CloudFormation custom resource request to the custom resource handler and anything else to a
// direct run.
func (h *Handler) Invoke(ctx context.Context, payload json.RawMessage) (any, error) {
	var ev cfn.Event
	if err := json.Unmarshal(payload, &ev); err == nil && ev.RequestType != "" && ev.ResponseURL != "" && ev.StackID != "" {
		respond := h.Respond
		if respond == nil {
			respond = Answer
		}
		return respond(h.customResource)(ctx, ev)
	}
	return h.direct(ctx)
}

// direct runs the self-test and returns its report, or fails with its cause.
func (h *Handler) direct(ctx context.Context) (*Report, error) {
	report, err := h.Run(ctx, h.bound(ctx))
	if err != nil {
		h.Logger.Error("self-test failed", "error", err.Error())
		return nil, err
	}
	h.Logger.Info("self-test passed", "eventId", report.Canary.EventID, "itemAfterMs", report.ItemAfter.Milliseconds())
	return report, nil
}

// bound shortens the self-test's timeout so the cleanup and the response fit before the invocation's deadline.
func (h *Handler) bound(ctx context.Context) func(*Options) {
	return func(o *Options) {
		if dl, ok := ctx.Deadline(); ok {
			if left := time.Until(dl) - responseReserve; left < o.Timeout {
				o.Timeout = max(left, time.Second)
			}
		}
	}
}

// customResource handles a CloudFormation request: Create and Update run the self-test (unless the stack is rolling
// back), Delete does nothing. Its physical id never changes, so an update never makes CloudFormation delete it.
func (h *Handler) customResource(ctx context.Context, ev cfn.Event) (string, map[string]any, error) {
	id := ev.PhysicalResourceID
	if ev.RequestType == cfn.RequestCreate || id == "" {
		id = "kdp-selftest-" + ev.LogicalResourceID
	}
	log := h.Logger.With("requestType", string(ev.RequestType), "logicalResourceId", ev.LogicalResourceID)
	switch ev.RequestType {
	case cfn.RequestCreate, cfn.RequestUpdate:
	default: // Delete: each run deletes its own canary items; nothing is left to remove, and nothing may fail here
		log.Info("self-test: nothing to do")
		return id, nil, nil
	}
	status, statusErr := h.stackStatus(ctx, ev.StackID)
	if strings.HasSuffix(status, "ROLLBACK_IN_PROGRESS") {
		log.Warn("self-test skipped: the stack is rolling back", "stackStatus", status)
		return id, map[string]any{"Skipped": "stack status " + status}, nil
	}
	report, err := h.Run(ctx, h.bound(ctx))
	if err != nil {
		msg := err.Error()
		if statusErr != nil {
			msg += fmt.Sprintf(" (the stack's status could not be read: %v)", statusErr)
		}
		log.Error("self-test failed", "error", msg)
		return id, nil, errors.New(fitReason(ev, id, msg))
	}
	log.Info("self-test passed", "eventId", report.Canary.EventID, "itemAfterMs", report.ItemAfter.Milliseconds())
	return id, map[string]any{"Nonce": report.Nonce, "ItemAfterMs": report.ItemAfter.Milliseconds()}, nil
}

// stackStatus returns the stack's status. An error leaves the status empty: the self-test then runs, and a failure
// fails the request (the construct grants DescribeStacks, so this takes an API failure during a failing test).
func (h *Handler) stackStatus(ctx context.Context, stackID string) (string, error) {
	if h.Stacks == nil {
		return "", errors.New("no CloudFormation client")
	}
	out, err := h.Stacks.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(stackID)})
	if err != nil {
		return "", fmt.Errorf("describe stacks: %w", err)
	}
	if len(out.Stacks) == 0 {
		return "", errors.New("describe stacks: no stack")
	}
	return string(out.Stacks[0].StackStatus), nil
}

// fitReason returns msg, or its longest prefix ending at a rune boundary followed by "...", such that the FAILED
// response to ev with physical id id stays within responseLimit once JSON encoded: escapes ("<" is 6 bytes, a
// control character up to 6) can make the body several times longer than msg.
func fitReason(ev cfn.Event, id, msg string) string {
	r := cfn.NewResponse(&ev)
	r.Status, r.PhysicalResourceID = cfn.StatusFailed, id
	base, err := json.Marshal(r)
	if err != nil {
		return ""
	}
	budget := responseLimit - len(base) - len(`,"Reason":""`)
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	if encodedLen(msg) <= budget {
		return msg
	}
	const cut = "..."
	used := len(cut)
	for i, c := range msg {
		if used += encodedLen(string(c)); used > budget {
			if i == 0 {
				return ""
			}
			return msg[:i] + cut
		}
	}
	return msg // not reached: the whole msg did not fit
}

// encodedLen is the length of s as a JSON string (encoding/json's escapes), without the quotes.
func encodedLen(s string) int {
	b, _ := json.Marshal(s) // a string always encodes
	return len(b) - 2
}

// answerTimeout bounds the PUT of an answer to CloudFormation's presigned URL; maxAnswerReply is how much of the
// URL's reply is read (S3 replies with an empty body).
const (
	answerTimeout  = 30 * time.Second
	maxAnswerReply = 4096
)

// Answer wraps fn as cfn.LambdaWrap does (SUCCESS, or FAILED with fn's error as the reason; the physical id falls
// back to the request's; a panic is answered FAILED, then goes on), but the PUT to the request's ResponseURL ends
// with the invocation's context or after answerTimeout, reads at most maxAnswerReply bytes of the reply and logs
// none of it, and its error does not name the URL (a presigned URL): an unreachable or forged ResponseURL can
// neither hold the function until Lambda's timeout nor write into its log.
func Answer(fn cfn.CustomResourceFunction) cfn.CustomResourceLambdaFunction {
	return func(ctx context.Context, ev cfn.Event) (string, error) {
		r := cfn.NewResponse(&ev)
		fallback := ev.PhysicalResourceID
		if ev.RequestType == cfn.RequestCreate {
			fallback = ev.RequestID
		}
		panicked := true
		defer func() {
			if panicked {
				r.Status, r.Reason, r.PhysicalResourceID, r.Data = cfn.StatusFailed, "the self-test function panicked, see its log", fallback, nil
				_ = sendAnswer(ctx, ev.ResponseURL, r)
			}
		}()
		id, data, err := fn(ctx, ev)
		panicked = false
		r.PhysicalResourceID, r.Data, r.Status = id, data, cfn.StatusSuccess
		if r.PhysicalResourceID == "" {
			r.PhysicalResourceID = fallback
		}
		if err != nil {
			r.Status, r.Reason = cfn.StatusFailed, err.Error()
		}
		if err := sendAnswer(ctx, ev.ResponseURL, r); err != nil {
			return "", err
		}
		return "", nil
	}
}

func sendAnswer(ctx context.Context, responseURL string, r *cfn.Response) error {
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("answer CloudFormation: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, answerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, responseURL, bytes.NewReader(body))
	if err != nil {
		return errors.New("answer CloudFormation: the request's ResponseURL is not a URL")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("answer CloudFormation: no reply from the ResponseURL: %w", ctx.Err())
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the presigned URL
		}
		return fmt.Errorf("answer CloudFormation: the PUT to the ResponseURL failed: %w", err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxAnswerReply))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("answer CloudFormation: the ResponseURL replied %d", res.StatusCode)
	}
	return nil
}
