// Package emfcount reads the record counts of the processor's Embedded Metric Format lines, for the operator tools
// (redrive, replay) that run the processor in process and report what it did with each batch.
package emfcount

import (
	"bytes"
	"encoding/json"
	"sync"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
)

// counted are the processor's record counts a Capture keeps.
var counted = []string{processor.MetricRecordsWritten, processor.MetricRecordsSkipped, processor.MetricRecordsToErrorTable,
	processor.MetricRecordsFailed, processor.MetricRecordsRefused, processor.MetricSelfTestRecordsToErrorTable}

// Capture is an io.Writer for processor.Options.MetricsWriter that keeps the counts of the last complete metrics
// line holding record counts (other lines, such as the aggregates' metrics, are passed over). Self-test records stored in the error table (processor.MetricSelfTestRecordsToErrorTable) are added to
// processor.MetricRecordsToErrorTable: for an operator they went to the error table like any other. It also adds up
// processor.MetricAggregateRecounted, processor.MetricAggregateUnseen, processor.MetricAggregateUnverified and
// processor.MetricAggregateForgotten and processor.MetricAggregateNoLedger over every line since Reset, whichever
// line carries them (Recounted, Unseen, Unverified, Forgotten, NoLedger).
type Capture struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	count     map[string]int
	recounted int
	unseen    int
	unverif   int
	forgotten int
	noLedger  int
}

// Write keeps the counts of each complete line of p; a partial line waits for the rest.
func (c *Capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	for {
		line, err := c.buf.ReadBytes('\n')
		if err != nil { // no full line yet: keep the rest
			rest := append([]byte(nil), line...)
			c.buf.Reset()
			c.buf.Write(rest)
			return len(p), nil
		}
		var v map[string]any
		if json.Unmarshal(line, &v) != nil {
			continue
		}
		if f, ok := v[processor.MetricAggregateRecounted].(float64); ok {
			c.recounted += int(f)
		}
		if f, ok := v[processor.MetricAggregateUnseen].(float64); ok {
			c.unseen += int(f)
		}
		if f, ok := v[processor.MetricAggregateUnverified].(float64); ok {
			c.unverif += int(f)
		}
		if f, ok := v[processor.MetricAggregateForgotten].(float64); ok {
			c.forgotten += int(f)
		}
		if f, ok := v[processor.MetricAggregateNoLedger].(float64); ok {
			c.noLedger += int(f)
		}
		m := map[string]int{}
		for _, name := range counted {
			if f, ok := v[name].(float64); ok {
				m[name] = int(f)
			}
		}
		if len(m) == 0 { // another line (the aggregates' metrics)
			continue
		}
		m[processor.MetricRecordsToErrorTable] += m[processor.MetricSelfTestRecordsToErrorTable]
		delete(m, processor.MetricSelfTestRecordsToErrorTable)
		c.count = m
	}
}

// Reset forgets what was written, before the next batch.
func (c *Capture) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Reset()
	c.count = nil
	c.recounted, c.unseen, c.unverif, c.forgotten, c.noLedger = 0, 0, 0, 0, 0
}

// Last returns the counts of the last complete metrics line, and false when there was none since Reset.
func (c *Capture) Last() (map[string]int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count, c.count != nil
}

// Recounted returns the records counted into the aggregates since Reset (processor.MetricAggregateRecounted, summed
// over every complete line): 0 when no line carried it.
func (c *Capture) Recounted() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.recounted
}

// Unseen returns the records a recount left uncounted because the aggregate ledger never saw them delivered since
// Reset (processor.MetricAggregateUnseen, summed over every complete line).
func (c *Capture) Unseen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unseen
}

// Unverified returns the records a recount left uncounted because their payload was not verified against the stream
// since Reset (processor.MetricAggregateUnverified, summed over every complete line).
func (c *Capture) Unverified() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unverif
}

// Forgotten returns the records a recount left uncounted because they lie before a give-up range the aggregate
// ledger dropped, since Reset (processor.MetricAggregateForgotten, summed over every complete line).
func (c *Capture) Forgotten() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.forgotten
}

// NoLedger returns the records a recount left uncounted because the aggregate ledger holds no state for their
// shard, since Reset (processor.MetricAggregateNoLedger, summed over every complete line).
func (c *Capture) NoLedger() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.noLedger
}
