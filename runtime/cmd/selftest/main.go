// Command selftest is the pipeline's self-test function, built as the `bootstrap` of a Lambda function next to the
// construct's selftest.json: a CloudFormation custom resource at deployment, and `aws lambda invoke` or a schedule on
// demand. See package runtime/selftest (Handler, Start).
package main

import "github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/selftest"

func main() {
	selftest.Start()
}
