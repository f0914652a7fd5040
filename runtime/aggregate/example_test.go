package aggregate_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/aggregate"
)

// The partition key of a per-minute aggregate's item for a reading: the window holding its time, the group values.
func ExampleKeyText() {
	at := time.Date(2024, 9, 13, 23, 6, 55, 0, time.UTC)
	ws := aggregate.WindowStart(at, time.Minute)
	group, _ := aggregate.GroupValue("C")
	key, _ := aggregate.KeyText("perCategory", ws, []any{group})
	fmt.Println(key)
	// Output: perCategory#2024-09-13T23:06:00Z#["C"]
}

// Sums are exact, as DynamoDB's numbers are.
func ExampleAdd() {
	a, _ := aggregate.ParseNumber(string(json.Number("0.1")))
	b, _ := aggregate.ParseNumber("0.2")
	fmt.Println(aggregate.Add(a, b))
	// Output: 0.3
}
