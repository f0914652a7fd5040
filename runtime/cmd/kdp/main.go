// Command kdp is the one tool for users of the kinesis-dynamo-pipeline construct:
//
//	kdp local   --cdk-out cdk.out --stack NAME [--pipeline PATH] [--records FILE|-] [--keep] [--json]
//	kdp redrive dlq|s3|errors [flags]
//	kdp replay  --stream ARN --since TIME [--until TIME] --table T [--error-table E] [--config C] [--aggregate-table A] [--dry-run] [--rate N] [--shard ID ...]
//
// kdp local runs a pipeline of a synthesized stack on this machine, on kinesalite and dynalite (Node.js and the two
// npm packages are needed; see package internal/kdplocal for what it recreates and what it does not emulate).
// Records come as NDJSON, one a line: {"data": <any JSON value>, "partitionKey": "..."}, or "dataBase64" for bytes
// that are not JSON. Its exit status is 0 when every record is accounted for (stored, filtered, or in the on-failure
// destination), 1 when any is lost or the run fails, 2 for bad usage. Hosts: Linux and macOS (WSL2 on Windows).
//
// kdp redrive is the redrive command (runtime/cmd/redrive, package runtime/redrive/cli): the same flags and exit
// statuses.
//
// kdp replay runs a time window of the stream through the pipeline's processor again, with conditional writes, for
// records that were stored wrong (package runtime/replay/cli): exit 0 when everything in the window was processed,
// 1 when anything was left, 2 for bad usage.
//
// Run it from the CDK app's module directory after `cdk synth`:
//
//	go run github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/cmd/kdp local --stack Ingest --records records.ndjson
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/internal/kdplocal"
	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/redrive/cli"
	replaycli "github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/replay/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage:
  kdp local   --cdk-out cdk.out --stack NAME [--pipeline PATH] [--records FILE|-] [--keep] [--json]
  kdp redrive dlq|s3|errors [flags]
  kdp replay  --stream ARN --since TIME [--until TIME] --table T [--error-table E] [--config C] [--aggregate-table A] [--dry-run] [--rate N] [--shard ID ...]
`

// run dispatches to a subcommand and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return kdplocal.ExitUsage
	}
	switch args[0] {
	case "local":
		return kdplocal.Main(ctx, args[1:], stdin, stdout, stderr)
	case "redrive":
		return cli.Main(ctx, args[1:], stdout, stderr)
	case "replay":
		return replaycli.Main(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "kdp: unknown command %q\n%s", args[0], usage)
		return kdplocal.ExitUsage
	}
}
