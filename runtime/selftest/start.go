package selftest

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
)

// Start runs the self-test function: options from the environment the construct sets (FromEnvironment), AWS clients
// from the SDK's default configuration, and Handler.Invoke handed to lambda.Start. A setup error is logged; the
// function still starts, answers CloudFormation's Delete (and requests during a rollback) with success, and fails
// every run with the setup error (StepSetup), so a broken configuration never leaves a stack unable to roll back or
// be deleted. Only AWS configuration that cannot be loaded at all makes the process exit with status 1.
func Start() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	h, err := newHandler(context.Background(), logger)
	if err != nil {
		logger.Error("self-test setup", "error", err.Error())
		if h == nil {
			os.Exit(1)
		}
	}
	lambda.Start(h.Invoke)
}

// newHandler builds the handler. When the self-test's own setup (FromEnvironment) fails, it returns a handler whose
// runs fail with that error, and the error; it returns no handler only when the AWS configuration cannot be loaded.
func newHandler(ctx context.Context, logger *slog.Logger) (*Handler, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, err
	}
	h := &Handler{Stacks: cloudformation.NewFromConfig(cfg), Logger: logger}
	opts, err := FromEnvironment(os.Getenv)
	if err != nil {
		setupErr := &Failure{Step: StepSetup, Cause: CauseInvalidConfiguration, Err: err}
		h.Run = func(context.Context, ...func(*Options)) (*Report, error) { return nil, setupErr }
		return h, err
	}
	kc, db, mappings := kinesis.NewFromConfig(cfg), dynamodb.NewFromConfig(cfg), awslambda.NewFromConfig(cfg)
	h.Run = func(ctx context.Context, fns ...func(*Options)) (*Report, error) {
		all := append([]func(*Options){opts, func(o *Options) { o.Mappings, o.Logger = mappings, logger }}, fns...)
		return Run(ctx, kc, db, all...)
	}
	return h, nil
}
