// Package enrich is the custom transform of the custom-processor example: it enriches each sensor reading and writes
// two items per record, the reading and the latest reading of its category, reusing everything else the processor
// library does (batching, validation, the error table, partial-batch responses, metrics).
package enrich

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// LatestPrefix starts the key of each category's latest-reading item.
const LatestPrefix = "latest#"

// New returns the transform. It starts from the declarative default transform of cfg (keys, metadata and any
// declarative options the construct configured), then:
//   - skips test readings (Category "TEST");
//   - sends readings without a known Category to the error table (a permanent error);
//   - adds CategoryName and ValueBand to the reading;
//   - writes a second item, "latest#<Category>", holding the category's latest reading. Several readings of one
//     category in a batch fold into one write: the later sequence number wins.
func New(cfg processor.Config) processor.Transform {
	base := processor.DefaultTransform(cfg)
	// The lookup the transform enriches readings from; a real processor might load it here, once per cold start.
	categoryNames := map[string]string{"A": "Temperature", "B": "Humidity", "C": "Pressure"}
	return func(ctx context.Context, r *processor.Record) ([]processor.Item, error) {
		category, _ := r.Data["Category"].(string)
		if category == "TEST" {
			return nil, processor.ErrSkip
		}
		name, ok := categoryNames[category]
		if !ok {
			return nil, processor.Permanent(fmt.Errorf("unknown Category %q", category))
		}
		value, ok := r.Data["Value"].(json.Number)
		if !ok {
			return nil, processor.Permanent(errors.New("Value is missing or not a number"))
		}
		items, err := base(ctx, r)
		if err != nil {
			return nil, err
		}
		band := "low"
		if f, err := value.Float64(); err == nil && f >= 50 {
			band = "high"
		}
		reading := items[0]
		reading["CategoryName"] = &types.AttributeValueMemberS{Value: name}
		reading["ValueBand"] = &types.AttributeValueMemberS{Value: band}
		latest := processor.Item{
			cfg.WithDefaults().PartitionKey.Name: &types.AttributeValueMemberS{Value: LatestPrefix + category},
			"Category":                           &types.AttributeValueMemberS{Value: category},
			"CategoryName":                       &types.AttributeValueMemberS{Value: name},
			"Value":                              &types.AttributeValueMemberN{Value: value.String()},
			"SourceEventId":                      &types.AttributeValueMemberS{Value: r.EventID},
		}
		return []processor.Item{reading, latest}, nil
	}
}
