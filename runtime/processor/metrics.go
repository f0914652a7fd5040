package processor

import (
	"strconv"
	"time"
)

// CloudWatch metrics the processor emits once per batch, in Embedded Metric Format on Options.MetricsWriter.
const (
	// MetricNamespace is the CloudWatch namespace of the processor's metrics.
	MetricNamespace = "KinesisDynamoPipeline"
	// MetricDimensionFunctionName is the metrics' one dimension: the Lambda function's name.
	MetricDimensionFunctionName = "FunctionName"
	// MetricRecordsWritten counts records whose items are all stored in the data table (Count).
	MetricRecordsWritten = "RecordsWritten"
	// MetricRecordsSkipped counts records the transform skipped (Count).
	MetricRecordsSkipped = "RecordsSkipped"
	// MetricRecordsToErrorTable counts records stored in the error table (Count).
	MetricRecordsToErrorTable = "RecordsToErrorTable"
	// MetricRecordsFailed counts records not stored anywhere, left for Lambda to retry (Count).
	MetricRecordsFailed = "RecordsFailed"
	// MetricRecordsRefused counts records not stored because an insert-only write (Options.InsertOnly) found another
	// record's item under their key; they are reported like failed records but not counted in MetricRecordsFailed
	// (Count).
	MetricRecordsRefused = "RecordsRefused"
	// MetricBatchLatency is the time a batch took, from receipt to response (Milliseconds).
	MetricBatchLatency = "BatchLatency"
)

type batchMetrics struct {
	written, skipped, toErrorTable, failed, refused int
	selfTestToErrorTable                            int
	latency                                         time.Duration
}

// emitMetrics writes one EMF line.
func (p *Processor) emitMetrics(m batchMetrics) {
	fn := p.functionName
	if fn == "" {
		fn = "unknown"
	}
	b := make([]byte, 0, 512)
	b = append(b, `{"_aws":{"Timestamp":`...)
	b = strconv.AppendInt(b, p.opts.Now().UnixMilli(), 10)
	b = append(b, `,"CloudWatchMetrics":[{"Namespace":"`+MetricNamespace+`","Dimensions":[["`+MetricDimensionFunctionName+`"]],"Metrics":[`+
		`{"Name":"`+MetricRecordsWritten+`","Unit":"Count"},`+
		`{"Name":"`+MetricRecordsSkipped+`","Unit":"Count"},`+
		`{"Name":"`+MetricRecordsToErrorTable+`","Unit":"Count"},`+
		`{"Name":"`+MetricRecordsFailed+`","Unit":"Count"},`+
		`{"Name":"`+MetricRecordsRefused+`","Unit":"Count"},`+
		`{"Name":"`+MetricSelfTestRecordsToErrorTable+`","Unit":"Count"},`+
		`{"Name":"`+MetricBatchLatency+`","Unit":"Milliseconds"}]}]},"`+MetricDimensionFunctionName+`":`...)
	b = strconv.AppendQuote(b, fn)
	b = appendMetric(b, MetricRecordsWritten, int64(m.written))
	b = appendMetric(b, MetricRecordsSkipped, int64(m.skipped))
	b = appendMetric(b, MetricRecordsToErrorTable, int64(m.toErrorTable))
	b = appendMetric(b, MetricRecordsFailed, int64(m.failed))
	b = appendMetric(b, MetricRecordsRefused, int64(m.refused))
	b = appendMetric(b, MetricSelfTestRecordsToErrorTable, int64(m.selfTestToErrorTable))
	b = append(b, `,"`+MetricBatchLatency+`":`...)
	b = strconv.AppendFloat(b, float64(m.latency.Microseconds())/1000, 'f', -1, 64)
	b = append(b, "}\n"...)
	p.metricsMu.Lock()
	defer p.metricsMu.Unlock()
	_, _ = p.opts.MetricsWriter.Write(b) // metrics are best effort
}

func appendMetric(b []byte, name string, v int64) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}
