package aggregate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
)

// RecountClass is what the ledger says of a record a recount is asked to count.
type RecountClass int

// Recount classes (see Store.Recount).
const (
	// RecountCounted: the pipeline counted the record (or has not reached it yet, or never ran the ledger on its
	// shard): nothing is counted.
	RecountCounted RecountClass = iota
	// RecountNoLedger: the shard has no state item (the pipeline never ran the ledger there): nothing is counted.
	RecountNoLedger
	// RecountMarked: the pipeline sent the record to the error table on its first delivery (it has an error
	// marker): counted in every item whose AttrSet lacks it.
	RecountMarked
	// RecountGap: the record lies in a give-up range: counted in every item whose AttrSet lacks it and where it is
	// after the item's crossing of the range (or its fence, before the crossing).
	RecountGap
	// RecountInFlight: the record was delivered and is not acknowledged yet: counted in every item whose AttrSet
	// lacks it and whose fence is before it.
	RecountInFlight
)

// String names the class.
func (c RecountClass) String() string {
	switch c {
	case RecountNoLedger:
		return "no-ledger"
	case RecountMarked:
		return "marked"
	case RecountGap:
		return "gap"
	case RecountInFlight:
		return "in-flight"
	}
	return "counted"
}

// RecountResult is the outcome of recounting one record.
type RecountResult struct {
	// Class is what the ledger says of the record.
	Class RecountClass
	// Applied counts the items the record was counted into by this call; Already those that had it (or where the
	// class says the pipeline counted it).
	Applied, Already int
	// Writes counts items written; Conflicts the writes refused because the item changed after it was read.
	Writes, Conflicts int
	// Err is why the recount did not finish: items not written may lack the record; recounting it again decides
	// the same way for them (the items written have it in their AttrSet).
	Err error
}

// Counted reports whether this call counted the record into at least one item.
func (r RecountResult) Counted() bool { return r.Applied > 0 }

// Recount counts one record's contributions (all of one record: one shard, one position) into the aggregates
// where the ledger shows the pipeline did not count it, exactly once, without moving fences: it reads the shard's
// state and the record's error marker, classifies the record (RecountClass) and, per item, applies the
// contribution iff the class's rule allows and the position is not in the item's AttrSet, adding it there, in one
// conditional write per item. Redrive and replay call it (through processor.Options.RecountAggregates) for each
// record they store; calling it again for the same record changes nothing.
func (s *Store) Recount(ctx context.Context, contribs []Contribution) RecountResult {
	if len(contribs) == 0 {
		return RecountResult{}
	}
	shard, p := contribs[0].Shard, contribs[0].Position
	for _, c := range contribs[1:] {
		if c.Shard != shard || !bytes.Equal(c.Position, p) {
			return RecountResult{Err: errors.New("recount: the contributions are not all of one record")}
		}
	}
	st, err := s.ReadShardState(ctx, shard)
	if err != nil {
		return RecountResult{Err: fmt.Errorf("recount: %w", err)}
	}
	if st.Version == 0 {
		return RecountResult{Class: RecountNoLedger, Already: len(contribs)}
	}
	rc := &recountRule{class: RecountCounted}
	marked, err := s.HasErrorMarker(ctx, shard, p)
	if err != nil {
		return RecountResult{Err: fmt.Errorf("recount: %w", err)}
	}
	if marked {
		rc.class = RecountMarked
	} else {
		for _, g := range st.Gaps {
			if g.contains(p) {
				rc.class, rc.gap = RecountGap, g
				break
			}
		}
		if rc.class == RecountCounted && st.Pending != nil && bytes.Compare(st.Pending, p) <= 0 &&
			st.Delivered != nil && bytes.Compare(p, st.Delivered) <= 0 {
			rc.class = RecountInFlight
		}
	}
	res := RecountResult{Class: rc.class}
	if rc.class == RecountCounted {
		res.Already = len(contribs)
		return res
	}
	var errs []error
	for _, r := range s.update(ctx, contribs, nil, rc) {
		res.Applied += r.Applied
		res.Already += r.Already
		res.Writes += r.Writes
		res.Conflicts += r.Conflicts
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	if len(errs) > 0 {
		res.Err = fmt.Errorf("recount: %w", errors.Join(errs...))
	}
	return res
}

// shardGaps returns the gaps of shard.
func shardGaps(gaps []Gap, shard string) []Gap {
	var out []Gap
	for _, g := range gaps {
		if g.Shard == shard {
			out = append(out, g)
		}
	}
	return out
}
