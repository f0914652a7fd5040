package replay

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Shard is a shard of the stream and the shards it came from.
type Shard struct {
	// ID is the shard's id.
	ID string
	// Parent is the shard it was split from, or one of the two it was merged from ("" for an original shard).
	Parent string
	// AdjacentParent is the other shard of a merge ("" otherwise).
	AdjacentParent string
	// Closed reports whether the shard has ended (it was split or merged).
	Closed bool

	listedParents []string // parents present in the plan
}

func (s Shard) parents() []string { return append([]string(nil), s.listedParents...) }

// plan returns the shards to replay in an order where each comes after its parents, with the parents each waits
// for: those in the list (a parent past the stream's retention is not listed, and nothing waits for it). With only,
// the plan holds just those shards (a parent not chosen is not waited for); a chosen shard the stream does not have
// is a *UsageError. Shards that do not depend on each other keep the stream's order (by shard id).
func plan(all []Shard, only []string) ([]Shard, error) {
	byID := make(map[string]Shard, len(all))
	for _, s := range all {
		if _, dup := byID[s.ID]; dup {
			return nil, fmt.Errorf("shard %s is listed twice", s.ID)
		}
		byID[s.ID] = s
	}
	chosen := byID
	if len(only) > 0 {
		chosen = map[string]Shard{}
		var missing []string
		for _, id := range only {
			s, ok := byID[id]
			if !ok {
				missing = append(missing, id)
				continue
			}
			chosen[id] = s
		}
		if len(missing) > 0 {
			return nil, &UsageError{fmt.Errorf("the stream has no shard %s (or it is past the stream's retention)", strings.Join(missing, ", "))}
		}
	}
	ids := make([]string, 0, len(chosen))
	for id := range chosen {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	// Depth-first, parents first; a shard on the current path again is a cycle (never on a real stream).
	const (
		unseen = iota
		onPath
		placed
	)
	mark := map[string]int{}
	var out []Shard
	var visit func(id string) error
	visit = func(id string) error {
		switch mark[id] {
		case placed:
			return nil
		case onPath:
			return errors.New("the shards' parents form a cycle at " + id)
		}
		mark[id] = onPath
		s := chosen[id]
		s.listedParents = nil
		for _, p := range []string{s.Parent, s.AdjacentParent} {
			if _, ok := chosen[p]; p == "" || !ok {
				continue
			}
			if err := visit(p); err != nil {
				return err
			}
			s.listedParents = append(s.listedParents, p)
		}
		mark[id] = placed
		out = append(out, s)
		return nil
	}
	for _, id := range ids {
		if err := visit(id); err != nil {
			return nil, err
		}
	}
	return out, nil
}
