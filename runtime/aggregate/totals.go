package aggregate

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Querier is the part of the DynamoDB API Totals uses. *dynamodb.Client satisfies it.
type Querier interface {
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

var _ Querier = (*dynamodb.Client)(nil)

// Query names one aggregate's total: a group in a window.
type Query struct {
	// Name is the aggregate's name.
	Name string
	// Measures are the aggregate's measures, as configured (processor.AggregateConfig.MeasureList gives them).
	Measures []Measure
	// Group holds the group values in GroupBy order: strings, numbers (json.Number, int, int64, float64 or
	// *Number), booleans or nil.
	Group []any
	// Window is the aggregate's window length; Time is any time inside the window wanted.
	Window time.Duration
	Time   time.Time
}

// Total is an aggregate's total for a group and window: the per-shard items combined.
type Total struct {
	// Values holds each measure's total by name; a min, max or sum no record had a value for is absent, and so is
	// every measure when no record counted (Shards is then 0).
	Values map[string]*Number
	// WindowStart is the window's start.
	WindowStart time.Time
	// Shards is the number of per-shard items combined.
	Shards int
}

// Totals reads an aggregate's per-shard items for a group and window (a strongly consistent Query on the partition
// key) and combines them: counts and sums add, minima and maxima take the smallest and largest.
func Totals(ctx context.Context, db Querier, table string, q Query) (Total, error) {
	group := make([]any, len(q.Group))
	for i, v := range q.Group {
		g, err := GroupValue(v)
		if err != nil {
			return Total{}, fmt.Errorf("totals: group value %d %w", i, err)
		}
		group[i] = g
	}
	ws := WindowStart(q.Time, q.Window)
	key, err := KeyText(q.Name, ws, group)
	if err != nil {
		return Total{}, fmt.Errorf("totals: %w", err)
	}
	sum := make(state, len(q.Measures))
	tot := Total{Values: map[string]*Number{}, WindowStart: ws}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(table),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": AttrPartitionKey},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: key}},
		ConsistentRead:            aws.Bool(true),
	}
	for {
		out, err := db.Query(ctx, in)
		if err != nil {
			return Total{}, fmt.Errorf("totals: query: %w", err)
		}
		for _, it := range out.Items {
			st, err := decodeState(it, q.Measures)
			if err != nil {
				return Total{}, fmt.Errorf("totals: %w", err)
			}
			sum.combine(q.Measures, st)
			tot.Shards++
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	for i, m := range q.Measures {
		if sum[i] != nil {
			tot.Values[m.Name] = sum[i]
		}
	}
	return tot, nil
}
