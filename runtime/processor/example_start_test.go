package processor_test

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// The main package of a processor of your own (the construct's ProcessorEntry). The options function sees the table
// names from the environment (o.TableName, o.ErrorTableName) and the configuration the construct bundled (o.Config),
// and can start from the default transform, declarative options included. Any error that is neither ErrSkip nor
// Permanent is transient: the record is reported and retried.
func ExampleStart() {
	processor.Start(func(o *processor.Options) {
		base := processor.DefaultTransform(o.Config)
		table := o.TableName
		o.Transform = func(ctx context.Context, r *processor.Record) ([]processor.Item, error) {
			if _, ok := r.Data["region"].(string); !ok {
				return nil, errors.New("region lookup not ready") // transient: retried from this record
			}
			items, err := base(ctx, r)
			if err != nil {
				return nil, err
			}
			items[0]["writtenTo"] = &types.AttributeValueMemberS{Value: table}
			return items, nil
		}
	})
}
