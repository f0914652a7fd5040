//go:build !kdp_noexpr

package processor_test

import (
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/dynamostandin"
)

// aggItems returns the stand-in's aggregate items: the aggregate table without the ledger's items (shard states
// and error markers, whose partition keys start with '_').
func aggItems(s *dynamostandin.Server) map[string]dynamostandin.Item {
	out := map[string]dynamostandin.Item{}
	for k, it := range s.Items(aggTable) {
		if pk, _ := it["pk"].(*types.AttributeValueMemberS); pk != nil && !strings.HasPrefix(pk.Value, "_") {
			out[k] = it
		}
	}
	return out
}
