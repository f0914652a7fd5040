package selftest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// Environment variables the construct sets on the self-test function (deploy-time names), read by FromEnvironment.
// The table names use the processor's own variables (processor.EnvTableName, processor.EnvErrorTableName).
const (
	EnvStreamName     = "PIPELINE_STREAM_NAME"
	EnvStreamARN      = "PIPELINE_STREAM_ARN"
	EnvMappingUUID    = "PIPELINE_SELFTEST_MAPPING_UUID"
	EnvTimeoutSeconds = "PIPELINE_SELFTEST_TIMEOUT_SECONDS"
	EnvConfigFile     = "PIPELINE_SELFTEST_CONFIG_FILE"
)

// FromEnvironment returns the options the construct configured: names from the environment (getenv), the
// configuration from ConfigFileName next to the executable (or $LAMBDA_TASK_ROOT, or EnvConfigFile).
func FromEnvironment(getenv func(string) string) (func(*Options), error) {
	path := getenv(EnvConfigFile)
	if path == "" {
		dir := getenv("LAMBDA_TASK_ROOT")
		if dir == "" {
			exe, err := os.Executable()
			if err != nil {
				return nil, fmt.Errorf("locate self-test config: %w", err)
			}
			dir = filepath.Dir(exe)
		}
		path = filepath.Join(dir, ConfigFileName)
	}
	cfg, err := ReadConfigFile(path)
	if err != nil {
		return nil, err
	}
	timeout := DefaultTimeout
	if s := getenv(EnvTimeoutSeconds); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s: %q is not a positive number of seconds", EnvTimeoutSeconds, s)
		}
		timeout = time.Duration(n) * time.Second
	}
	stream, arn, table := getenv(EnvStreamName), getenv(EnvStreamARN), getenv(processor.EnvTableName)
	if stream == "" && arn == "" || table == "" {
		return nil, fmt.Errorf("environment variables %s or %s, and %s must be set", EnvStreamName, EnvStreamARN, processor.EnvTableName)
	}
	errorTable, uuid := getenv(processor.EnvErrorTableName), getenv(EnvMappingUUID)
	return func(o *Options) {
		o.StreamName, o.StreamARN, o.TableName, o.ErrorTableName = stream, arn, table, errorTable
		o.Config, o.Timeout, o.MappingUUID = cfg, timeout, uuid
	}, nil
}
