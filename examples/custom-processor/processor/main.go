// Command processor is the custom-processor example's Lambda function: the library's processor with the enrich
// transform. The construct bundles it because the app sets ProcessorEntry to this directory.
package main

import (
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/examples/custom-processor/enrich"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

func main() {
	processor.Start(func(o *processor.Options) {
		// o already holds the table names from the environment and the configuration file the construct wrote.
		o.Transform = enrich.New(o.Config)
	})
}
