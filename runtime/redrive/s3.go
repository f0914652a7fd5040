package redrive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
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

// S3 redrives the invocation records in an S3 on-failure destination, verifying each before writing anything: for
// each object under the prefix, it checks that the object names the pinned stream (Options.StreamARN), then reads
// the range it names from the stream. Where the stream still holds records of the range, they are the source: the
// payload's records must equal them (data, partition key, sequence number), or nothing is written
// (OutcomePayloadDiffers); the stream's records are written conditionally. Payload records older than anything the
// stream still holds (past its retention) are written insert-only (or conditionally with
// Options.AllowOverwriteUnverified). With Delete, an object is deleted once every record of its range is stored.
func (r *Redriver) S3(ctx context.Context, in S3Input) (Summary, error) {
	r.start()
	if r.c.S3 == nil {
		return r.finish(), errors.New("s3: no S3 client")
	}
	if in.Bucket == "" {
		return r.finish(), errors.New("s3: bucket is empty")
	}
	if r.pin == nil {
		return r.finish(), errors.New("s3: the pipeline's stream ARN is required (Options.StreamARN)")
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
	if res, foreign := r.foreign(source, bi); foreign {
		return res
	}
	var res Result
	if rec.Payload == nil || len(rec.Payload.Records) == 0 {
		res = r.processRange(ctx, source, bi)
	} else {
		res = r.processPayload(ctx, source, bi, rec.Payload.Records)
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

// processPayload handles an object whose payload holds records: it reads the range from the stream first, checks
// the payload against what the stream holds, and only then writes: the stream's records conditionally, the payload
// records the stream no longer holds insert-only. Nothing is written when the read fails for any other reason than
// the range being past retention, or when the payload differs from the stream.
func (r *Redriver) processPayload(ctx context.Context, source string, bi KinesisBatchInfo, payload []events.KinesisEventRecord) Result {
	res := Result{Source: source, Outcome: OutcomeRecovered, ShardID: bi.ShardID, StartSequenceNumber: bi.StartSequenceNumber, EndSequenceNumber: bi.EndSequenceNumber}
	for i, rec := range payload {
		if rec.EventSourceArn == "" {
			continue
		}
		if ref, err := ParseStreamARN(rec.EventSourceArn); err != nil || !r.pin.Same(ref) {
			res.Outcome = OutcomeForeignStream
			res.Reason = fmt.Sprintf("payload record %d names stream %s, not the pinned stream %s: left where it is, nothing read or written", i, rec.EventSourceArn, r.pin.ARN)
			return res
		}
	}
	if r.c.Kinesis == nil {
		res.Outcome, res.Reason = OutcomeFailed, "no Kinesis client to verify the payload against the stream: nothing written"
		return res
	}
	// Verify before any write: read what the stream still holds of the range.
	var held []ktypes.Record
	size := 0
	readErr := r.readRange(ctx, *r.pin, bi, true, func(recs []ktypes.Record) error {
		for _, rec := range recs {
			size += len(rec.Data)
		}
		if size > maxObjectSize {
			return fmt.Errorf("the range holds more than %d bytes of records", maxObjectSize)
		}
		held = append(held, recs...)
		return nil
	})
	var exp *errExpired
	if readErr != nil && !errors.As(readErr, &exp) {
		res.Outcome = OutcomeFailed
		res.Reason = fmt.Sprintf("the payload cannot be verified against the stream: %v; nothing written", readErr)
		return res
	}
	unverified, err := comparePayload(bi, payload, held)
	if err != nil {
		res.Outcome = OutcomePayloadDiffers
		res.Reason = fmt.Sprintf("payload differs from the stream: %v; nothing written", err)
		return res
	}
	// The records the stream no longer holds are older than those it holds: write them first, so that a later
	// record of the same key, from the stream, wins.
	ub := &batcher{r: r}
	err = ub.add(ctx, unverified...)
	if err == nil {
		err = ub.flush(ctx)
	}
	vb := &batcher{r: r, verified: true}
	_, vb.distrust = r.run.distrustRange(ctx, bi)
	if err == nil {
		evs := make([]events.KinesisEventRecord, len(held))
		for i, rec := range held {
			evs[i] = eventRecord(*r.pin, bi.ShardID, rec)
		}
		vb.paced = true // readRange waited for them
		err = vb.add(ctx, evs...)
		if err == nil {
			err = vb.flush(ctx)
		}
	}
	ub.result(&res)
	vres := Result{Outcome: OutcomeRecovered}
	vb.result(&vres)
	res.Records.add(vres.Records)
	if vres.Outcome != OutcomeRecovered && res.Outcome != OutcomeRefused {
		res.Outcome = vres.Outcome
	}
	if vres.Reason != "" {
		res.Reason = strings.TrimPrefix(res.Reason+"; "+vres.Reason, "; ")
	}
	if err != nil {
		mergeReadError(&res, err)
		return res
	}
	if readErr != nil {
		// Part of the range is past the stream's retention: the payload is all there is of it. The object counts as
		// recovered only when the payload holds every record of the range.
		if gap := payloadCovers(bi, payload); gap != nil {
			mergeReadError(&res, &errExpired{fmt.Sprintf("%v, and %v", readErr, gap)})
		}
	}
	return res
}

// comparePayload checks an object's payload against held, the records of its range the stream still holds (all of
// them, or its newest ones when the rest is past the stream's retention), and returns the payload records older
// than anything held: those only the payload vouches for. A payload record must be of the range's shard, within the
// range, in increasing order; one that the stream holds must equal it (data, partition key); one within what the
// stream holds but absent from it does not exist.
func comparePayload(bi KinesisBatchInfo, payload []events.KinesisEventRecord, held []ktypes.Record) ([]events.KinesisEventRecord, error) {
	bySeq := make(map[string]ktypes.Record, len(held))
	oldest := ""
	for _, h := range held {
		seq := aws.ToString(h.SequenceNumber)
		bySeq[seq] = h
		if oldest == "" || CompareSequenceNumbers(seq, oldest) < 0 {
			oldest = seq
		}
	}
	var unverified []events.KinesisEventRecord
	prev := ""
	for i, rec := range payload {
		seq := rec.Kinesis.SequenceNumber
		shard, _, _ := strings.Cut(rec.EventID, ":")
		switch {
		case shard != bi.ShardID:
			return nil, fmt.Errorf("record %d (event id %s) is not of shard %s", i, rec.EventID, bi.ShardID)
		case !ValidSequenceNumber(seq):
			return nil, fmt.Errorf("record %d has sequence number %q", i, seq)
		case rec.EventID != shard+":"+seq:
			return nil, fmt.Errorf("record %d: event id %s does not match its sequence number %s", i, rec.EventID, seq)
		case CompareSequenceNumbers(seq, bi.StartSequenceNumber) < 0 || CompareSequenceNumbers(seq, bi.EndSequenceNumber) > 0:
			return nil, fmt.Errorf("record %d (sequence number %s) is outside the range %s..%s", i, seq, bi.StartSequenceNumber, bi.EndSequenceNumber)
		case prev != "" && CompareSequenceNumbers(seq, prev) <= 0:
			return nil, fmt.Errorf("record %d (sequence number %s) does not follow %s", i, seq, prev)
		}
		prev = seq
		h, ok := bySeq[seq]
		switch {
		case ok && !bytes.Equal(h.Data, rec.Kinesis.Data):
			return nil, fmt.Errorf("record %d (sequence number %s): its data differs from the stream's record", i, seq)
		case ok && aws.ToString(h.PartitionKey) != rec.Kinesis.PartitionKey:
			return nil, fmt.Errorf("record %d (sequence number %s): its partition key %s differs from the stream's %s", i, seq, rec.Kinesis.PartitionKey, aws.ToString(h.PartitionKey))
		case ok:
		case oldest != "" && CompareSequenceNumbers(seq, oldest) >= 0:
			return nil, fmt.Errorf("record %d (sequence number %s): the stream holds no such record, though it holds the range from %s", i, seq, oldest)
		default:
			unverified = append(unverified, rec)
		}
	}
	return unverified, nil
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
