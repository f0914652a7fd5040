package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// NewDynamoDBClient returns a DynamoDB client for the processor. Its retryer is the SDK's standard one without the
// client-side retry quota (ratelimit.None), so sustained throttling never exhausts a shared quota and turns every
// request into an immediate failure, and with a short backoff (sdkBackoff: full jitter from 25 ms, at most
// 250 ms), because the processor retries throttled writes itself within the invocation's deadline. The SDK's own
// backoff after a throttle is up to 1 s, which under a short function timeout spends the whole write budget on one
// sleep. optFns run after these settings.
func NewDynamoDBClient(cfg aws.Config, optFns ...func(*dynamodb.Options)) *dynamodb.Client {
	fns := make([]func(*dynamodb.Options), 0, len(optFns)+1)
	fns = append(fns, func(o *dynamodb.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.RateLimiter = ratelimit.None
			so.MaxBackoff = sdkBackoffCap
			so.Backoff = sdkBackoff{}
		})
	})
	fns = append(fns, optFns...)
	return dynamodb.NewFromConfig(cfg, fns...)
}

// sdkBackoffCap is the longest wait of the SDK's retryer between two attempts of one request.
const sdkBackoffCap = 250 * time.Millisecond

// sdkBackoff is the SDK retryer's delay before retry number attempt (1-based, as the SDK counts): exponential from
// backoffBase with full jitter, at most sdkBackoffCap, for throttling and other retryable errors alike.
type sdkBackoff struct{}

// BackoffDelay implements retry.BackoffDelayer.
func (sdkBackoff) BackoffDelay(attempt int, _ error) (time.Duration, error) {
	d := backoffBase << min(max(attempt-1, 0), 16)
	if d > sdkBackoffCap || d <= 0 {
		d = sdkBackoffCap
	}
	return rand.N(d + 1), nil
}

// Start runs the processor as a Lambda function: it reads the table names from EnvTableName and EnvErrorTableName,
// the static configuration with LoadConfig, the AWS configuration from the environment Lambda sets (AWS_REGION, the
// role's AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; AWS_ENDPOINT_URL_DYNAMODB or AWS_ENDPOINT_URL
// when set), applies optFns, and hands Handle to lambda.Start. A setup error is logged and the process exits with
// status 1. Start does not use the SDK's default loader (shared config files, SSO, IMDS), which would double the
// size of `bootstrap`: a processor that needs it can load its own configuration and call New.
func Start(optFns ...func(*Options)) {
	p, err := setup(context.Background(), optFns...)
	if err != nil {
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("processor setup", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(p.Handle)
}

// setup builds the processor Start runs.
func setup(ctx context.Context, optFns ...func(*Options)) (*Processor, error) {
	var errs []error
	cfg, err := LoadConfig()
	if err != nil {
		errs = append(errs, err)
	}
	awsCfg, endpoint, err := lambdaAWSConfig()
	if err != nil {
		errs = append(errs, fmt.Errorf("load AWS config: %w", err))
	}
	table := os.Getenv(EnvTableName)
	if table == "" {
		errs = append(errs, fmt.Errorf("environment variable %s is not set", EnvTableName))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	fns := make([]func(*Options), 0, len(optFns)+1)
	fns = append(fns, func(o *Options) {
		o.TableName = table
		o.ErrorTableName = os.Getenv(EnvErrorTableName)
		o.AggregateTableName = os.Getenv(EnvAggregateTableName)
		o.Config = cfg
	})
	fns = append(fns, optFns...)
	return New(newClientDB(NewDynamoDBClient(awsCfg, endpoint)), fns...)
}
