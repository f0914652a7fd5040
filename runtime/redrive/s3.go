package redrive

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// DefaultS3Prefix is where Lambda writes invocation records in an S3 on-failure destination:
// "aws/lambda/<event source mapping UUID>/<shard id>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<random UUID>".
const DefaultS3Prefix = "aws/lambda/"

// maxObjectSize bounds an invocation record read from S3 (an invocation's payload is at most 6 MB, base64 and JSON
// add a third).
const maxObjectSize = 64 << 20

// S3Input says which bucket to redrive.
type S3Input struct {
	// Bucket is the on-failure destination bucket. Required.
	Bucket string
	// Prefix limits the objects read. Default: DefaultS3Prefix.
	Prefix string
	// Delete removes an object once its records are stored. Default: false, objects are kept (expire them with the
	// bucket's lifecycle rules); a rerun processes them again, which rewrites the same items.
	Delete bool
	// MaxObjects stops the run after this many objects. Default: 0, every object under Prefix.
	MaxObjects int
}

// S3 redrives the invocation records in an S3 on-failure destination: for each object under the prefix, it handles
// the records of its payload (or, when the object has none, reads the range back from the stream) and, with Delete,
// deletes the object once every record is stored.
func (r *Redriver) S3(ctx context.Context, in S3Input) (Summary, error) {
	r.start()
	if r.c.S3 == nil {
		return r.finish(), errors.New("s3: no S3 client")
	}
	if in.Bucket == "" {
		return r.finish(), errors.New("s3: bucket is empty")
	}
	if in.Prefix == "" {
		in.Prefix = DefaultS3Prefix
	}
	count := 0
	var token *string
	for {
		out, err := r.c.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(in.Bucket), Prefix: aws.String(in.Prefix), ContinuationToken: token})
		if err != nil {
			return r.finish(), fmt.Errorf("s3: list s3://%s/%s: %w", in.Bucket, in.Prefix, err)
		}
		for _, obj := range out.Contents {
			if in.MaxObjects > 0 && count >= in.MaxObjects {
				return r.finish(), nil
			}
			if err := ctx.Err(); err != nil {
				return r.finish(), fmt.Errorf("s3: %w", err)
			}
			count++
			r.record(r.redriveObject(ctx, in, aws.ToString(obj.Key)))
		}
		if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
			return r.finish(), nil
		}
		token = out.NextContinuationToken
	}
}

func (r *Redriver) redriveObject(ctx context.Context, in S3Input, key string) Result {
	source := "s3://" + in.Bucket + "/" + key
	out, err := r.c.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(in.Bucket), Key: aws.String(key)})
	if err != nil {
		return Result{Source: source, Outcome: OutcomeFailed, Reason: fmt.Sprintf("get object: %v", err)}
	}
	body, err := io.ReadAll(io.LimitReader(out.Body, maxObjectSize+1))
	_ = out.Body.Close()
	if err != nil {
		return Result{Source: source, Outcome: OutcomeFailed, Reason: fmt.Sprintf("read object: %v", err)}
	}
	if len(body) > maxObjectSize {
		return Result{Source: source, Outcome: OutcomeInvalid, Reason: fmt.Sprintf("object is larger than %d bytes", maxObjectSize)}
	}
	rec, err := ParseFailureRecord(body)
	if err != nil {
		return Result{Source: source, Outcome: OutcomeInvalid, Reason: err.Error()}
	}
	bi := rec.KinesisBatchInfo
	var res Result
	if rec.Payload == nil || len(rec.Payload.Records) == 0 {
		res = r.processRange(ctx, source, bi)
	} else {
		res = Result{Source: source, Outcome: OutcomeRecovered, ShardID: bi.ShardID, StartSequenceNumber: bi.StartSequenceNumber, EndSequenceNumber: bi.EndSequenceNumber}
		b := &batcher{r: r}
		err := b.add(ctx, rec.Payload.Records...)
		if err == nil {
			err = b.flush(ctx)
		}
		b.result(&res)
		if err != nil {
			res.Outcome, res.Reason = OutcomeFailed, err.Error()
		}
	}
	if res.Outcome != OutcomeRecovered || !in.Delete || r.opts.DryRun {
		return res
	}
	if _, err := r.c.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(in.Bucket), Key: aws.String(key)}); err != nil {
		res.Outcome, res.Reason = OutcomeFailed, fmt.Sprintf("records stored, but the object was not deleted: %v", err)
		return res
	}
	res.Removed = true
	return res
}
