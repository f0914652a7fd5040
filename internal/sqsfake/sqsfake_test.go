package sqsfake_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/sqsfake"
)

// TestWithSDK drives the fake with the real SDK client, whose checksum validation checks the MD5 digests.
func TestWithSDK(t *testing.T) {
	srv, err := sqsfake.New()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	c := sqs.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")},
		func(o *sqs.Options) { o.BaseEndpoint = aws.String(srv.URL()) })
	q, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("dlq")})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"one", "two", "three"} {
		if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 2, VisibilityTimeout: 60})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Messages) != 2 || aws.ToString(got.Messages[0].Body) != "one" {
		t.Fatalf("received %+v", got.Messages)
	}
	// The received messages are invisible: the next receive gets the third.
	next, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10})
	if err != nil || len(next.Messages) != 1 || aws.ToString(next.Messages[0].Body) != "three" {
		t.Fatalf("second receive: %+v, %v", next, err)
	}
	if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: q.QueueUrl, ReceiptHandle: got.Messages[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: q.QueueUrl, ReceiptHandle: got.Messages[1].ReceiptHandle, VisibilityTimeout: 0}); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages("dlq")
	if len(msgs) != 2 || msgs[0].Body != "two" || !msgs[0].Visible || msgs[0].Receives != 1 || msgs[1].Visible {
		t.Errorf("messages = %+v", msgs)
	}
	_, err = c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: q.QueueUrl, ReceiptHandle: aws.String("bogus")})
	var invalid *types.ReceiptHandleIsInvalid
	if !errors.As(err, &invalid) {
		t.Errorf("delete with a bogus handle: %v", err)
	}
	_, err = c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(srv.QueueURL("missing"))})
	var missing *types.QueueDoesNotExist
	if !errors.As(err, &missing) {
		t.Errorf("receive from a missing queue: %v", err)
	}
}
