package kinesisretry_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/internal/kinesisretry"
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
			err := kinesisretry.Throttled(ctx, func(attempt int, err error) {
				heard++
				if attempt != heard || !kinesisretry.IsThrottling(err) {
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
		if got := kinesisretry.IsThrottling(tt.err); got != tt.want {
			t.Errorf("IsThrottling(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
