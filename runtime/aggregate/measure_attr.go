package aggregate

import (
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// measureAttr encodes a measure's value: a number (N) when DynamoDB's numbers hold it (38 significant digits,
// magnitude 1E-130 to 9.99...E+125), else a string (S) holding the exact decimal. Only a sum can need the string:
// each value, count, minimum and maximum fits a number, but a sum of numbers that fit may not (12345678901234567890
// + 0.12345678901234567890 needs 40 digits). Storing it rounded would break exactness, and refusing the write would
// stop the shard at that record.
func measureAttr(n *Number) types.AttributeValue {
	if n.check() == nil {
		return &types.AttributeValueMemberN{Value: n.String()}
	}
	return &types.AttributeValueMemberS{Value: n.String()}
}

// measureValue decodes a measure written by measureAttr: a number (N) or a string (S) holding an exact decimal.
func measureValue(av types.AttributeValue) (*Number, error) {
	var text string
	switch x := av.(type) {
	case *types.AttributeValueMemberN:
		text = x.Value
	case *types.AttributeValueMemberS:
		text = x.Value
	default:
		return nil, fmt.Errorf("is a %T, not a number (N) or an exact decimal (S)", av)
	}
	n, err := parseDecimal(text)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", text, err)
	}
	return n, nil
}
