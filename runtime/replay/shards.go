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
	ancestors     []string // every shard it descends from that the listing names: all hold older records
}

func (s Shard) parents() []string { return append([]string(nil), s.listedParents...) }

// ancestorsOf returns the shards id descends from, as far as the listing (byID) goes: its parents, theirs, and so
// on. A parent past the stream's retention is not listed, but its child names it, so it is included too.
func ancestorsOf(id string, byID map[string]Shard) []string {
	var out []string
	seen := map[string]bool{id: true}
	queue := []string{id}
	for len(queue) > 0 {
		s, ok := byID[queue[0]]
		queue = queue[1:]
		if !ok {
			continue
		}
		for _, p := range []string{s.Parent, s.AdjacentParent} {
			if p != "" && !seen[p] {
				seen[p] = true
				out = append(out, p)
				queue = append(queue, p)
			}
		}
	}
	sort.Strings(out)
	return out
}

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
	// Each round places the first shard (by id) whose listed parents are all placed.
	placed := map[string]bool{}
	out := make([]Shard, 0, len(ids))
	for len(out) < len(ids) {
		progressed := false
		for _, id := range ids {
			if placed[id] {
				continue
			}
			s := chosen[id]
			s.listedParents = nil
			s.ancestors = ancestorsOf(id, byID)
			ready := true
			for _, p := range []string{s.Parent, s.AdjacentParent} {
				if _, ok := chosen[p]; p == "" || p == id || !ok {
					continue
				}
				s.listedParents = append(s.listedParents, p)
				ready = ready && placed[p]
			}
			if !ready {
				continue
			}
			placed[id] = true
			out = append(out, s)
			progressed = true
			break
		}
		if !progressed {
			return nil, errors.New("the shards' parents form a cycle")
		}
	}
	return out, nil
}
