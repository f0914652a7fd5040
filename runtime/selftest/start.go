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
// from the SDK's default configuration, and Handler.Invoke handed to lambda.Start. A setup error is logged and the
// process exits with status 1.
func Start() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	h, err := newHandler(context.Background(), logger)
	if err != nil {
		logger.Error("self-test setup", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Invoke)
}

func newHandler(ctx context.Context, logger *slog.Logger) (*Handler, error) {
	opts, err := FromEnvironment(os.Getenv)
	if err != nil {
		return nil, err
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, err
	}
	kc, db, mappings := kinesis.NewFromConfig(cfg), dynamodb.NewFromConfig(cfg), awslambda.NewFromConfig(cfg)
	return &Handler{
		Stacks: cloudformation.NewFromConfig(cfg),
		Logger: logger,
		Run: func(ctx context.Context, fns ...func(*Options)) (*Report, error) {
			all := append([]func(*Options){opts, func(o *Options) { o.Mappings, o.Logger = mappings, logger }}, fns...)
			return Run(ctx, kc, db, all...)
		},
	}, nil
}
