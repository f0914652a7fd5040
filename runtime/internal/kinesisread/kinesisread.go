// Package kinesisread paces the operator tools' Kinesis reads (redrive, replay) and retries them while Kinesis
// throttles them: without enhanced fan-out they share each shard's read limits with the live pipeline.
package kinesisread

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
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

// ReadLimit returns the GetRecords Limit for reading at most rate records per second: limit, or less when rate is
// positive and below it (at least 1). Rates are compared as floats: one beyond an int32 (or NaN, or +Inf) never
// turns into a negative Limit.
func ReadLimit(rate float64, limit int32) int32 {
	if rate > 0 && rate < float64(limit) {
		return int32(max(1, math.Ceil(rate)))
	}
	return limit
}

// CheckRate returns a problem with rate, a records-per-second cap where 0 means none, or nil.
func CheckRate(rate float64) error {
	switch {
	case math.IsNaN(rate) || math.IsInf(rate, 0):
		return fmt.Errorf("rate %v is not a finite number", rate)
	case rate < 0:
		return fmt.Errorf("rate %v is negative", rate)
	}
	return nil
}

// Limiter paces records to Rate records per second, for any number of goroutines. The first records go at once;
// each Wait books its records' time. A Rate of 0 or less means no limit.
type Limiter struct {
	Rate float64
	Now  func() time.Time // the clock; nil means time.Now

	mu   sync.Mutex
	next time.Time
}

// Wait blocks until n more records may go, or ctx is done.
func (l *Limiter) Wait(ctx context.Context, n int) error {
	if l.Rate <= 0 || n <= 0 {
		return ctx.Err()
	}
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	l.mu.Lock()
	t := now()
	if l.next.Before(t) {
		l.next = t
	}
	d := l.next.Sub(t)
	l.next = l.next.Add(time.Duration(float64(n) / l.Rate * float64(time.Second)))
	l.mu.Unlock()
	if d <= 0 {
		return ctx.Err()
	}
	if err := Sleep(ctx, d); err != nil {
		return fmt.Errorf("rate limit: %w", err)
	}
	return nil
}

// Sleep waits d, or until ctx is done (then it returns ctx's error).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
