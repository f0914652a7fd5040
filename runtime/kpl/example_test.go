package kpl_test

import (
	"fmt"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/kpl"
)

func Example() {
	agg := kpl.Aggregate([]kpl.UserRecord{
		{PartitionKey: "order-1", Data: []byte(`{"order":"1","total":12}`)},
		{PartitionKey: "order-2", Data: []byte(`{"order":"2","total":7}`)},
	})
	fmt.Printf("aggregated: %v, prefix % X\n", kpl.IsAggregated(agg), agg[:4])

	records, err := kpl.Deaggregate(agg)
	if err != nil {
		fmt.Println(err)
		return
	}
	for i, r := range records {
		fmt.Printf("#%d %s %s\n", i, r.PartitionKey, r.Data)
	}

	agg[len(agg)-1] ^= 1 // corrupt the checksum
	_, err = kpl.Deaggregate(agg)
	fmt.Println(err)
	// Output:
	// aggregated: true, prefix F3 89 9A C2
	// #0 order-1 {"order":"1","total":12}
	// #1 order-2 {"order":"2","total":7}
	// kpl: aggregated record checksum mismatch (corrupt or truncated)
}
