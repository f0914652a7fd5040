package cli

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// TestAttackRateNotFinite: --rate NaN or Inf is bad usage (exit 2) before any AWS client is made; NaN used to run
// with no limit at all, Inf to fail every shard's reads.
func TestAttackRateNotFinite(t *testing.T) {
	for _, k := range []string{processor.EnvTableName, processor.EnvErrorTableName, processor.EnvConfigFile} {
		t.Setenv(k, "")
	}
	for _, rate := range []string{"NaN", "nan", "Inf", "+Inf", "infinity"} {
		t.Run(rate, func(t *testing.T) {
			made := false
			newClients := func(context.Context, string) (clients, error) {
				made = true
				return clients{}, errors.New("no AWS here")
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"--stream", testARN, "--since", "2h", "--table", "T", "--rate", rate}, &stdout, &stderr, newClients)
			if code != ExitUsage || made {
				t.Errorf("--rate %s: exit %d (clients made: %v), want %d before any client; stderr %q", rate, code, made, ExitUsage, stderr.String())
			}
		})
	}
}
