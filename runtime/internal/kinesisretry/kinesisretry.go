// Package kinesisretry retries the operator tools' Kinesis reads (redrive, replay) while Kinesis throttles them:
// without enhanced fan-out they share each shard's read limits with the live pipeline.
package kinesisretry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Limits of Throttled.
const (
	MaxThrottled = 12                     // throttled calls in a row before giving up
	Base         = 100 * time.Millisecond // the first wait after a throttled call; doubled each time
	Cap          = 5 * time.Second        // the longest wait after a throttled call
)

// Throttled calls call until it returns anything but a throttling error, waiting a growing, jittered pause after
// each throttled call (at most MaxThrottled in a row), and returns its last error. onThrottle, if not nil, hears
// of each throttled call before the pause. When ctx ends during a pause, the error wraps both ctx's and the call's.
func Throttled(ctx context.Context, onThrottle func(attempt int, err error), call func() error) error {
	d := Base
	for n := 0; ; n++ {
		err := call()
		if err == nil || !IsThrottling(err) || n >= MaxThrottled {
			return err
		}
		if onThrottle != nil {
			onThrottle(n+1, err)
		}
		t := time.NewTimer(d/2 + rand.N(d/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (after: %w)", ctx.Err(), err)
		case <-t.C:
		}
		d = min(2*d, Cap)
	}
}

// IsThrottling reports whether err is Kinesis throttling a read.
func IsThrottling(err error) bool {
	var pt *ktypes.ProvisionedThroughputExceededException
	var le *ktypes.LimitExceededException
	return errors.As(err, &pt) || errors.As(err, &le)
}
