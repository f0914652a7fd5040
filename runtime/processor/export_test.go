package processor

// Test-only exports for the external test package (processor_test).
var (
	DynamoItemSize   = dynamoItemSize   // an item's size by DynamoDB's rules (dynamosize_test.go)
	DynamoValueSize  = dynamoValueSize  // a value's size by DynamoDB's rules
	DynamoNumberSize = dynamoNumberSize // a number's size by DynamoDB's rules
)
