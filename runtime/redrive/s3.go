package redrive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-lambda-go/events"

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
// the records of its payload (or, when the object has none or its payload does not cover the range it names, reads
// the range back from the stream) and, with Delete, deletes the object once every record of the range is stored.
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
		if gap := payloadCovers(bi, rec.Payload.Records); gap != nil {
			// The payload's records are stored (or not) as above, but they are not the whole range: the object goes
			// only if the stream still holds every record of the range and all of them are stored.
			rr := r.processRange(ctx, source, bi)
			rr.Records.add(res.Records)
			if res.Outcome != OutcomeRecovered && rr.Outcome == OutcomeRecovered {
				rr.Outcome, rr.Reason = res.Outcome, res.Reason
			}
			if rr.Outcome != OutcomeRecovered {
				rr.Reason = fmt.Sprintf("%v; the range read from the stream: %s", gap, rr.Reason)
			}
			res = rr
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

// payloadCovers reports, as an error, how an object's payload differs from the range its KinesisBatchInfo names:
// the payload covers the range only when its records are all of the range's shard (and stream), in increasing
// order within the range, the first one the range's start, the last its end, and their count the batch size.
func payloadCovers(bi KinesisBatchInfo, recs []events.KinesisEventRecord) error {
	where := fmt.Sprintf("the payload does not cover shard %s range %s..%s (%d records)", bi.ShardID, bi.StartSequenceNumber, bi.EndSequenceNumber, bi.BatchSize)
	prev := ""
	for i, rec := range recs {
		seq := rec.Kinesis.SequenceNumber
		shard, _, _ := strings.Cut(rec.EventID, ":")
		switch {
		case shard != bi.ShardID:
			return fmt.Errorf("%s: record %d (event id %q) is not of the shard", where, i, rec.EventID)
		case rec.EventSourceArn != "" && rec.EventSourceArn != bi.StreamARN:
			return fmt.Errorf("%s: record %d is of stream %s", where, i, rec.EventSourceArn)
		case !ValidSequenceNumber(seq):
			return fmt.Errorf("%s: record %d has sequence number %q", where, i, seq)
		case CompareSequenceNumbers(seq, bi.StartSequenceNumber) < 0 || CompareSequenceNumbers(seq, bi.EndSequenceNumber) > 0:
			return fmt.Errorf("%s: record %d (sequence number %s) is outside the range", where, i, seq)
		case prev != "" && CompareSequenceNumbers(seq, prev) <= 0:
			return fmt.Errorf("%s: record %d (sequence number %s) does not follow %s", where, i, seq, prev)
		}
		prev = seq
	}
	switch {
	case len(recs) == 0:
		return fmt.Errorf("%s: it holds no record", where)
	case recs[0].Kinesis.SequenceNumber != bi.StartSequenceNumber:
		return fmt.Errorf("%s: its first record is %s", where, recs[0].Kinesis.SequenceNumber)
	case recs[len(recs)-1].Kinesis.SequenceNumber != bi.EndSequenceNumber:
		return fmt.Errorf("%s: its last record is %s", where, recs[len(recs)-1].Kinesis.SequenceNumber)
	case len(recs) != bi.BatchSize:
		return fmt.Errorf("%s: it holds %d records", where, len(recs))
	}
	return nil
}
