// Package dynamostandin is a DynamoDB stand-in for tests and benchmarks: an HTTP server on 127.0.0.1 that speaks the
// DynamoDB JSON 1.0 protocol well enough for aws-sdk-go-v2's client (set BaseEndpoint to Server.URL and use static
// credentials; signatures are not checked).
//
// A Server either answers BatchWriteItem, PutItem and GetItem itself, keeping the items in memory where a test can
// read them back with Server.Items, or forwards every request to an upstream DynamoDB-compatible server such as
// dynalite. Answering itself, it checks items as DynamoDB does, from the request's wire JSON (what the SDK actually
// sent, after it replaced invalid UTF-8): keys present and not empty, no duplicate keys in a batch, items within
// 400 KB counted in UTF-8 bytes, numbers of at most 38 significant digits within DynamoDB's range, sets not empty
// and without duplicates, nesting within 32 levels. It keys items by its own code (KeyString), numbers by value. It
// evaluates PutItem's ConditionExpression (attribute_exists, attribute_not_exists, begins_with, comparators, AND,
// OR, NOT; strings and binaries compared byte by byte, numbers by value) and answers a false one with
// ConditionalCheckFailedException. In
// both modes it injects faults at chosen rates: latency, throttling (ProvisionedThroughputExceededException),
// partial UnprocessedItems on BatchWriteItem, ValidationException and dropped connections. Fault decisions come from
// a random source seeded by Options.Seed, drawn once per request in arrival order: the same seed and the same
// sequence of requests give the same faults.
//
// Remember that the SDK retries throttling and dropped connections itself (three attempts by default): configure
// RetryMaxAttempts 1 to observe the raw behaviour.
package dynamostandin
