package aggregate

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"
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
	// RecountUnseen: the pipeline passed the record without the ledger seeing it delivered, and Store.CountUnseen
	// vouches that it was given up: counted in every item whose AttrSet lacks it.
	RecountUnseen
	// RecountForgotten: the record lies before the end of a give-up range the shard state dropped (AttrForgot,
	// MaxLedgerGaps), and is not marked, in no gap kept and not in flight: it may lie in the dropped range,
	// uncounted or partly counted, or the pipeline counted it; nothing tells which. Nothing is counted (not even
	// with Store.CountUnseen), and the caller must not take it for counted: kdp redrive keeps its source.
	RecountForgotten
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
	case RecountUnseen:
		return "unseen"
	case RecountForgotten:
		return "forgotten"
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
	// Unseen reports that the ledger never saw the record delivered although the pipeline has passed it (at or
	// before the shard's delivered position; not marked, in no gap, not pending): it was counted by the pipeline,
	// or given up while none of its batch's attempts reached the ledger. Only Store.CountUnseen counts it.
	Unseen bool
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
// conditional write per item. Calling it again for the same record changes nothing. RecountBatch does the same
// for many records with one write per item.
func (s *Store) Recount(ctx context.Context, contribs []Contribution) RecountResult {
	b := s.RecountBatch(ctx, [][]Contribution{contribs})
	r := b.Records[0]
	r.Writes, r.Conflicts = b.Writes, b.Conflicts
	return r
}

// RecountBatch is Recount for many records (each element all of one record's contributions; records of several
// shards may mix): the shard states are read once per shard and the error markers once per record, and each
// item is read and written once for all the records counted into it, so records sharing items (a batch of a
// redrive or replay) do not contend for them. Records[i] is records[i]'s result; Writes and Conflicts count the
// item writes and the writes refused because another writer changed the item.
func (s *Store) RecountBatch(ctx context.Context, records [][]Contribution) RecountBatchResult {
	out := RecountBatchResult{Records: make([]RecountResult, len(records))}
	rules := make([]*recountRule, len(records))
	states := map[string]*shardStateRead{}
	for i, contribs := range records {
		if len(contribs) == 0 {
			continue
		}
		shard, p := contribs[0].Shard, contribs[0].Position
		for _, c := range contribs[1:] {
			if c.Shard != shard || !bytes.Equal(c.Position, p) {
				out.Records[i].Err = errors.New("recount: the contributions are not all of one record")
				break
			}
		}
		if _, ok := states[shard]; !ok {
			states[shard] = &shardStateRead{}
		}
	}
	limit := s.inFlight()
	var g errgroup.Group
	g.SetLimit(limit)
	for shard, st := range states {
		g.Go(func() error {
			st.state, st.err = s.ReadShardState(ctx, shard)
			return nil
		})
	}
	_ = g.Wait()
	for i, contribs := range records {
		if len(contribs) == 0 || out.Records[i].Err != nil {
			continue
		}
		g.Go(func() error {
			rules[i], out.Records[i] = s.classify(ctx, states[contribs[0].Shard], contribs)
			return nil
		})
	}
	_ = g.Wait()
	s.recountItems(ctx, records, rules, &out)
	// A record in flight that an item declined by its fence: the pipeline may have moved the fence past it without
	// counting it after classify's reads, either because it sent the record to the error table and marked it, or
	// because the mapping gave up on it and the next batch recorded the give-up range. Both are written before Apply
	// moves any fence (MarkErrors writes the marker, BeginBatch the range), so the shard state and the marker read
	// again now, after the items, show them: the record is then recounted as marked, or by the range's crossings
	// (the items that took it have it in their sets).
	again := make([]*recountRule, len(records))
	retry := false
	fresh := map[string]*shardStateRead{}
	for i, rr := range out.Records {
		if rules[i] == nil || rules[i].class != RecountInFlight || rr.Err != nil || rr.Already == 0 {
			continue
		}
		shard := records[i][0].Shard
		st := fresh[shard]
		if st == nil {
			st = &shardStateRead{}
			st.state, st.err = s.ReadShardState(ctx, shard)
			fresh[shard] = st
		}
		rc, res := s.classify(ctx, st, records[i])
		if res.Err != nil {
			out.Records[i].Err = res.Err
			continue
		}
		if rc != nil && (rc.class == RecountMarked || rc.class == RecountGap) {
			again[i], retry = rc, true
			out.Records[i].Class = rc.class
			out.Records[i].Already = -out.Records[i].Applied // the items that took it answer Already again
		}
	}
	if retry {
		s.recountItems(ctx, records, again, &out)
	}
	return out
}

// recountItems applies records[i] by rules[i] (nil: not at all), tallying into out.
func (s *Store) recountItems(ctx context.Context, records [][]Contribution, rules []*recountRule, out *RecountBatchResult) {
	var all []Contribution
	byRef := map[int][]int{} // contribution Ref -> indexes of records
	for i, contribs := range records {
		if rules[i] == nil {
			continue
		}
		for _, c := range contribs {
			c.rule = rules[i]
			all = append(all, c)
		}
		byRef[contribs[0].Ref] = append(byRef[contribs[0].Ref], i)
	}
	if len(all) == 0 {
		return
	}
	for _, r := range s.update(ctx, all, nil, true) {
		out.Writes += r.Writes
		out.Conflicts += r.Conflicts
		applied, full := map[int]bool{}, map[int]bool{}
		for _, ref := range r.AppliedRefs {
			applied[ref] = true
		}
		for _, ref := range r.FullRefs {
			full[ref] = true
		}
		seen := map[int]bool{}
		for _, ref := range r.Refs {
			if seen[ref] {
				continue
			}
			seen[ref] = true
			for _, i := range byRef[ref] {
				rr := &out.Records[i]
				switch {
				case r.Err != nil:
					rr.Err = errors.Join(rr.Err, fmt.Errorf("recount: %w", r.Err))
				case full[ref]:
					rr.Err = errors.Join(rr.Err, fmt.Errorf("recount: item %q/%q: %w", r.Key, r.Shard, ErrItemFull))
				case applied[ref]:
					rr.Applied++
				default:
					rr.Already++
				}
			}
		}
	}
}

// RecountBatchResult is the outcome of RecountBatch.
type RecountBatchResult struct {
	// Records holds each record's result, in the order given (their Writes and Conflicts are 0: see the totals).
	Records []RecountResult
	// Writes counts items written; Conflicts the writes refused because the item changed after it was read.
	Writes, Conflicts int
}

// shardStateRead is a shard's state as RecountBatch read it.
type shardStateRead struct {
	state ShardState
	err   error
}

// classify decides what the ledger says of one record (all its contributions of one shard and position): the
// rule its contributions are applied by, nil when nothing is to be counted (the result says why).
func (s *Store) classify(ctx context.Context, st *shardStateRead, contribs []Contribution) (*recountRule, RecountResult) {
	shard, p := contribs[0].Shard, contribs[0].Position
	if st.err != nil {
		return nil, RecountResult{Err: fmt.Errorf("recount: %w", st.err)}
	}
	if st.state.Version == 0 {
		return nil, RecountResult{Class: RecountNoLedger, Already: len(contribs)}
	}
	rc := &recountRule{class: RecountCounted}
	marked, err := s.HasErrorMarker(ctx, shard, p)
	if err != nil {
		return nil, RecountResult{Err: fmt.Errorf("recount: %w", err)}
	}
	if marked {
		rc.class = RecountMarked
	} else {
		for _, g := range st.state.Gaps {
			if g.contains(p) {
				rc.class, rc.gap = RecountGap, g
				break
			}
		}
		if rc.class == RecountCounted && st.state.Pending != nil && bytes.Compare(st.state.Pending, p) <= 0 &&
			st.state.Delivered != nil && bytes.Compare(p, st.state.Delivered) <= 0 {
			rc.class = RecountInFlight
		}
		// Unseen, but not before a forgotten give-up range's end: p may lie in it, partly counted; reported.
		if rc.class == RecountCounted && st.state.Delivered != nil && bytes.Compare(p, st.state.Delivered) <= 0 &&
			st.state.Forgot != nil && bytes.Compare(p, st.state.Forgot) < 0 {
			return nil, RecountResult{Class: RecountForgotten, Already: len(contribs)}
		}
		if rc.class == RecountCounted && st.state.Delivered != nil && bytes.Compare(p, st.state.Delivered) <= 0 &&
			(st.state.Forgot == nil || bytes.Compare(p, st.state.Forgot) >= 0) {
			if !s.CountUnseen {
				return nil, RecountResult{Class: RecountCounted, Already: len(contribs), Unseen: true}
			}
			rc.class = RecountUnseen
		}
	}
	if rc.class == RecountCounted {
		return nil, RecountResult{Class: rc.class, Already: len(contribs)}
	}
	if rc.class == RecountUnseen {
		return rc, RecountResult{Class: rc.class, Unseen: true}
	}
	return rc, RecountResult{Class: rc.class}
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
