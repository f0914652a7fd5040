// Package dynamostandin is a DynamoDB stand-in for tests and benchmarks: an HTTP server on 127.0.0.1 that speaks the
// DynamoDB JSON 1.0 protocol well enough for aws-sdk-go-v2's client (set BaseEndpoint to Server.URL and use static
// credentials; signatures are not checked).
//
// A Server either answers BatchWriteItem and PutItem itself, keeping the items in memory where a test can read them
// back with Server.Items, or forwards every request to an upstream DynamoDB-compatible server such as dynalite. In
// both modes it injects faults at chosen rates: latency, throttling (ProvisionedThroughputExceededException),
// partial UnprocessedItems on BatchWriteItem, ValidationException and dropped connections. Fault decisions come from
// a random source seeded by Options.Seed, drawn once per request in arrival order: the same seed and the same
// sequence of requests give the same faults.
//
// Remember that the SDK retries throttling and dropped connections itself (three attempts by default): configure
// RetryMaxAttempts 1 to observe the raw behaviour.
package dynamostandin
