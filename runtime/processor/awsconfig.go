package processor

import (
	"context"
	"errors"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// Environment variables the Lambda runtime (or a local run) sets, read by lambdaAWSConfig.
const (
	envRegion          = "AWS_REGION"
	envDefaultRegion   = "AWS_DEFAULT_REGION"
	envAccessKeyID     = "AWS_ACCESS_KEY_ID"
	envSecretAccessKey = "AWS_SECRET_ACCESS_KEY"
	envSessionToken    = "AWS_SESSION_TOKEN"
	envAccountID       = "AWS_ACCOUNT_ID"
	envEndpointDynamo  = "AWS_ENDPOINT_URL_DYNAMODB"
	envEndpoint        = "AWS_ENDPOINT_URL"
	envIgnoreEndpoints = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"
)

// lambdaAWSConfig builds the AWS configuration from the environment the Lambda runtime sets: the region from
// AWS_REGION (or AWS_DEFAULT_REGION) and the function role's credentials from AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN. It replaces the SDK's default loader (config.LoadDefaultConfig),
// whose shared-file, SSO, STS, IMDS and container credential providers the processor never uses in Lambda but which
// made up most of `bootstrap`. The DynamoDB endpoint is returned separately: AWS_ENDPOINT_URL_DYNAMODB, else
// AWS_ENDPOINT_URL, unless AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is true.
func lambdaAWSConfig() (aws.Config, func(*dynamodb.Options), error) {
	var errs []error
	region := os.Getenv(envRegion)
	if region == "" {
		region = os.Getenv(envDefaultRegion)
	}
	if region == "" {
		errs = append(errs, errors.New("environment variable "+envRegion+" is not set"))
	}
	id, secret := os.Getenv(envAccessKeyID), os.Getenv(envSecretAccessKey)
	if id == "" || secret == "" {
		errs = append(errs, errors.New("environment variables "+envAccessKeyID+" and "+envSecretAccessKey+" are not set"))
	}
	if err := errors.Join(errs...); err != nil {
		return aws.Config{}, nil, err
	}
	cfg := aws.Config{
		Region: region,
		Credentials: aws.NewCredentialsCache(credentials.StaticCredentialsProvider{Value: aws.Credentials{
			AccessKeyID: id, SecretAccessKey: secret, SessionToken: os.Getenv(envSessionToken),
			Source: "EnvConfigCredentials", AccountID: os.Getenv(envAccountID),
		}}),
	}
	endpoint := os.Getenv(envEndpointDynamo)
	if endpoint == "" {
		endpoint = os.Getenv(envEndpoint)
	}
	if strings.EqualFold(os.Getenv(envIgnoreEndpoints), "true") {
		endpoint = ""
	}
	return cfg, func(o *dynamodb.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}, nil
}

// clientDB gives the processor's DB interface only the methods it uses, as method values. Storing
// *dynamodb.Client in an interface, even inside a struct, would make the linker keep every exported method of the
// client (every DynamoDB operation with its serializers, about 2 MB): the expression library calls
// reflect.Value.MethodByName, which turns off that dead-code elimination for every type reachable from an interface.
type clientDB struct {
	batch func(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	put   func(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	get   func(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
}

func newClientDB(c *dynamodb.Client) clientDB {
	return clientDB{batch: c.BatchWriteItem, put: c.PutItem, get: c.GetItem}
}

// BatchWriteItem calls the client's BatchWriteItem.
func (d clientDB) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return d.batch(ctx, in, optFns...)
}

// PutItem calls the client's PutItem.
func (d clientDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return d.put(ctx, in, optFns...)
}

// GetItem calls the client's GetItem (Options.InsertOnly).
func (d clientDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return d.get(ctx, in, optFns...)
}
