package kinesispipeline

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// Key sources for TransformProps.PartitionKeyFrom and SortKeyFrom that read the record's metadata. Any other value
// is a dot-separated path into the record's JSON payload, for example "order.id".
const (
	KeySource_EVENT_ID        = processor.SourceEventID        // "shardId:sequenceNumber": one item per Kinesis record
	KeySource_SEQUENCE_NUMBER = processor.SourceSequenceNumber // the record's sequence number (string)
	KeySource_PARTITION_KEY   = processor.SourcePartitionKey   // the producer's partition key
	KeySource_SHARD_ID        = processor.SourceShardID        // the shard the record came from
	KeySource_ARRIVAL_TIME    = processor.SourceArrivalTime    // RFC 3339 for a STRING key, Unix milliseconds for NUMBER
)

// MetadataAttribute names a metadata attribute the default processor can write on every item (see
// KinesisDynamoPipelineProps.Metadata). The value is the attribute's name in the table.
type MetadataAttribute string

// Metadata attributes for KinesisDynamoPipelineProps.Metadata, with what each costs per item (name plus value, by
// DynamoDB's size rules, for a record of the AWS sample).
const (
	// MetadataAttribute_ARRIVAL_TIME is the record's approximate arrival time in the stream, RFC 3339 UTC (about
	// 43 bytes). The default.
	MetadataAttribute_ARRIVAL_TIME MetadataAttribute = processor.AttrArrivalTime
	// MetadataAttribute_SEQUENCE_NUMBER is the record's sequence number (about 78 bytes). Under the default
	// event-id key the key already holds it.
	MetadataAttribute_SEQUENCE_NUMBER MetadataAttribute = processor.AttrSequenceNumber
	// MetadataAttribute_PARTITION_KEY is the producer's partition key (20 bytes plus the key, up to 256
	// characters; binary when a KPL user record's is not valid UTF-8).
	MetadataAttribute_PARTITION_KEY MetadataAttribute = processor.AttrPartitionKey
	// MetadataAttribute_PROCESSED_AT is when the processor handled the batch, RFC 3339 UTC (about 42 bytes); it
	// changes when a record is replayed.
	MetadataAttribute_PROCESSED_AT MetadataAttribute = processor.AttrProcessedAt
)

// MetadataNone returns the Metadata prop that writes no metadata attribute (what OmitMetadata true did).
func MetadataNone() *[]MetadataAttribute { return &[]MetadataAttribute{} }

// MetadataAll returns the Metadata prop that writes every metadata attribute (what earlier versions wrote by
// default).
func MetadataAll() *[]MetadataAttribute {
	return &[]MetadataAttribute{MetadataAttribute_SEQUENCE_NUMBER, MetadataAttribute_PARTITION_KEY,
		MetadataAttribute_ARRIVAL_TIME, MetadataAttribute_PROCESSED_AT}
}

// DefaultTimeToLiveAttribute is the data table's TTL attribute when TransformProps.TimeToLive is set.
const DefaultTimeToLiveAttribute = "expiresAt"

// TransformProps customizes the default processor's transform declaratively. Everything is compiled and checked at
// synth time with the same code the processor runs at cold start, so a typo fails `cdk synth`, not production. It is
// carried to the processor in its configuration file (not the environment, which Lambda limits to 4 KB).
//
// Per record, the processor runs: Schema, Filter, Include, Rename, Exclude, Computed, the key attributes (read from
// the original payload), the metadata attributes KinesisDynamoPipelineProps.Metadata lists, then TimeToLive.
type TransformProps struct {
	// PartitionKeyFrom is where the partition key's value comes from: a KeySource_* constant or a dot path into the
	// JSON payload. A key mapped from a payload field (a business id) folds records the producer put twice into one
	// item. The attribute's name and type are PartitionKey's. A record whose value is missing, empty or of the wrong
	// type goes to the error table.
	//
	// Default: - KeySource_EVENT_ID, one item per Kinesis record.
	PartitionKeyFrom *string
	// SortKeyFrom is where the sort key's value comes from (as PartitionKeyFrom). Only with SortKey.
	//
	// Default: - the payload field named like the sort key.
	SortKeyFrom *string
	// Include keeps only these payload paths (dot paths into nested objects).
	//
	// Default: - every field.
	Include *[]*string
	// Exclude drops these payload paths.
	//
	// Default: - none.
	Exclude *[]*string
	// Rename moves the value at a payload path (key) to a top-level attribute (value).
	//
	// Default: - none.
	Rename *map[string]*string
	// Computed adds attributes computed by expressions (github.com/expr-lang/expr), in order; later ones see earlier
	// results. Expressions see the payload's fields as variables (missing ones are nil), `payload` (the whole object),
	// `record` (eventId, partitionKey, sequenceNumber, shardId, arrivalTime, processedAt) and the functions
	// iso8601(t), unixMillis(t), unixSeconds(t) besides expr's own (upper, lower, trim, split, date, duration, ...).
	//
	// Default: - none.
	Computed *[]*ComputedAttribute
	// Filter is a boolean expression over the payload and `record`; records for which it is false are skipped:
	// counted in RecordsSkipped, not written.
	//
	// Default: - every record is written.
	Filter *string
	// Schema is a JSON Schema document (as JSON text; draft 2020-12 unless its "$schema" says otherwise) the payload
	// must satisfy; other records go to the error table with the schema errors as the reason. It must be
	// self-contained.
	//
	// Default: - no schema.
	Schema *string
	// TimeToLive makes items expire this long after their arrival in the stream: the processor sets
	// TimeToLiveAttribute (Unix seconds) and the construct enables TTL on the table. Not allowed with an existing
	// Table (the construct cannot change a table it does not own).
	//
	// Default: - items never expire.
	TimeToLive awscdk.Duration
	// TimeToLiveAttribute names the TTL attribute. Only with TimeToLive.
	//
	// Default: "expiresAt".
	TimeToLiveAttribute *string
}

// ComputedAttribute is one attribute of TransformProps.Computed.
type ComputedAttribute struct {
	// Name of the attribute.
	Name *string
	// Expression computing its value. Integral numbers stay exact, times become RFC 3339 strings, nil becomes NULL.
	Expression *string
}

// transformConfig converts the props to the processor's configuration and reports problems only the props can have
// (the rest is Config.Validate's job).
func transformConfig(t *TransformProps) (*processor.TransformConfig, []string) {
	var problems []string
	out := &processor.TransformConfig{
		Include: derefAll(t.Include),
		Exclude: derefAll(t.Exclude),
		Filter:  deref(t.Filter),
	}
	if t.Rename != nil {
		out.Rename = map[string]string{}
		for from, to := range *t.Rename {
			out.Rename[from] = deref(to)
		}
	}
	if t.Computed != nil {
		for i, c := range *t.Computed {
			if c == nil {
				problems = append(problems, fmt.Sprintf("Transform.Computed[%d]: is nil", i))
				continue
			}
			out.Computed = append(out.Computed, processor.ComputedAttribute{Name: deref(c.Name), Expression: deref(c.Expression)})
		}
	}
	if t.Schema != nil {
		if !json.Valid([]byte(*t.Schema)) {
			problems = append(problems, "Transform.Schema: is not valid JSON")
		} else {
			out.Schema = json.RawMessage(*t.Schema)
		}
	}
	if t.TimeToLiveAttribute != nil && t.TimeToLive == nil {
		problems = append(problems, "Transform.TimeToLiveAttribute: only allowed with Transform.TimeToLive")
	}
	if t.TimeToLive != nil && !*t.TimeToLive.IsUnresolved() {
		attr := DefaultTimeToLiveAttribute
		if t.TimeToLiveAttribute != nil {
			attr = *t.TimeToLiveAttribute
		}
		out.TTL = &processor.TTLConfig{Attribute: attr, Seconds: int64(math.Ceil(seconds(t.TimeToLive)))}
	}
	return out, problems
}

// configProblem names the prop a processor.Config problem is about.
func configProblem(line string) string {
	for _, m := range []struct{ from, to string }{
		{"partition key:", "PartitionKey:"},
		{"sort key:", "SortKey:"},
		{"error TTL:", "ErrorRetention:"},
		{"metadata", "Metadata"},
		{"transform.include", "Transform.Include"},
		{"transform.exclude", "Transform.Exclude"},
		{"transform.rename", "Transform.Rename"},
		{"transform.computed", "Transform.Computed"},
		{"transform.filter", "Transform.Filter"},
		{"transform.schema", "Transform.Schema"},
		{"transform.ttl", "Transform.TimeToLive"},
		{"transform", "Transform"},
		{"aggregates", "Aggregates"},
	} {
		if strings.HasPrefix(line, m.from) {
			return m.to + strings.TrimPrefix(line, m.from)
		}
	}
	return "Transform: " + line
}

func derefAll(list *[]*string) []string {
	if list == nil {
		return nil
	}
	out := make([]string, 0, len(*list))
	for _, s := range *list {
		out = append(out, deref(s))
	}
	return out
}
