package kinesisread_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/internal/kinesisread"
)

func TestThrottled(t *testing.T) {
	throttled := fmt.Errorf("get records: %w", &ktypes.ProvisionedThroughputExceededException{})
	limited := &ktypes.LimitExceededException{}
	other := errors.New("access denied")
	tests := []struct {
		name      string
		results   []error // what the calls return, in order
		cancel    bool    // ctx ends before the first pause ends
		wantCalls int
		wantErr   error // nil, or what the error must wrap
	}{
		{"success at once", []error{nil}, false, 1, nil},
		{"throttled twice, then success", []error{throttled, limited, nil}, false, 3, nil},
		{"another error is not retried", []error{other, nil}, false, 1, other},
		{"throttled, then another error", []error{throttled, other}, false, 2, other},
		{"context ends during the pause", []error{throttled, nil}, true, 1, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			calls, heard := 0, 0
			err := kinesisread.Throttled(ctx, func(attempt int, err error) {
				heard++
				if attempt != heard || !kinesisread.IsThrottling(err) {
					t.Errorf("onThrottle(%d, %v) after %d", attempt, err, heard-1)
				}
				if tt.cancel {
					cancel()
				}
			}, func() error {
				calls++
				return tt.results[calls-1]
			})
			if calls != tt.wantCalls {
				t.Errorf("%d calls, want %d", calls, tt.wantCalls)
			}
			if (tt.wantErr == nil) != (err == nil) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
			if tt.cancel && !errors.Is(err, throttled) {
				t.Errorf("error %v does not keep the call's error", err)
			}
		})
	}
}

func TestIsThrottling(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&ktypes.ProvisionedThroughputExceededException{}, true},
		{fmt.Errorf("wrapped: %w", &ktypes.LimitExceededException{}), true},
		{&ktypes.ExpiredIteratorException{}, false},
		{errors.New("ProvisionedThroughputExceededException"), false},
		{nil, false},
	} {
		if got := kinesisread.IsThrottling(tt.err); got != tt.want {
			t.Errorf("IsThrottling(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestReadLimit(t *testing.T) {
	for _, tt := range []struct {
		rate  float64
		limit int32
		want  int32
	}{
		{0, 10000, 10000},       // no cap
		{-1, 10000, 10000},      // never reaches here (CheckRate), but no negative Limit either
		{0.2, 10000, 1},         // at least one record a read
		{2.5, 10000, 3},         // whole records
		{500, 100, 100},         // the batch size is smaller
		{3e9, 10000, 10000},     // beyond an int32
		{1e300, 10000, 10000},   // far beyond
		{math.NaN(), 100, 100},  // not a number: no cap
		{math.Inf(1), 100, 100}, // infinite: no cap
	} {
		if got := kinesisread.ReadLimit(tt.rate, tt.limit); got != tt.want {
			t.Errorf("ReadLimit(%v, %d) = %d, want %d", tt.rate, tt.limit, got, tt.want)
		}
	}
}

func TestCheckRate(t *testing.T) {
	for _, tt := range []struct {
		rate    float64
		wantErr string
	}{
		{0, ""}, {0.5, ""}, {3e9, ""},
		{-1, "negative"}, {math.NaN(), "not a finite number"}, {math.Inf(1), "not a finite number"}, {math.Inf(-1), "not a finite number"},
	} {
		err := kinesisread.CheckRate(tt.rate)
		if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("CheckRate(%v) = %v, want %q", tt.rate, err, tt.wantErr)
		}
	}
}

func TestLimiter(t *testing.T) {
	clock := time.Unix(1000, 0)
	l := &kinesisread.Limiter{Rate: 10, Now: func() time.Time { return clock }}
	ctx := context.Background()
	if err := l.Wait(ctx, 5); err != nil { // the first records go at once
		t.Fatalf("first Wait = %v", err)
	}
	// 5 records at 10 a second are booked until 0.5 s: the next Wait must wait that long, so a context that ends
	// sooner stops it.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := l.Wait(short, 1); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "rate limit") {
		t.Errorf("second Wait = %v, want the deadline, as a rate limit", err)
	}
	clock = clock.Add(10 * time.Second) // past every booking: no wait
	if err := l.Wait(short, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait with an ended context = %v", err)
	}
	if err := l.Wait(ctx, 1); err != nil {
		t.Errorf("Wait after the bookings = %v", err)
	}
	none := &kinesisread.Limiter{}
	if err := none.Wait(ctx, 1000); err != nil {
		t.Errorf("no rate: Wait = %v", err)
	}
}
