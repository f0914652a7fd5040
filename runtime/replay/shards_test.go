package replay

import (
	"errors"
	"reflect"

	"github.com/cdk-constructs-go/kinesis-dynamo-pipeline/runtime/processor"
	"testing"
)

// TestPlan: every shard comes after the parents listed with it (a split's one parent, a merge's two), a parent not
// listed (past retention) or not chosen is not waited for, and an unknown chosen shard is a usage error.
func TestPlan(t *testing.T) {
	s := func(id, parent, adjacent string) Shard {
		return Shard{ID: id, Parent: parent, AdjacentParent: adjacent}
	}
	tests := []struct {
		name        string
		give        []Shard
		only        []string
		wantOrder   []string
		wantParents map[string][]string
		wantUsage   bool
	}{
		{
			name:      "independent shards keep their order",
			give:      []Shard{s("shardId-000000000001", "", ""), s("shardId-000000000000", "", "")},
			wantOrder: []string{"shardId-000000000000", "shardId-000000000001"},
		},
		{
			name: "split: the parent before both children",
			give: []Shard{s("shardId-000000000001", "shardId-000000000000", ""), s("shardId-000000000002", "shardId-000000000000", ""),
				s("shardId-000000000000", "", "")},
			wantOrder:   []string{"shardId-000000000000", "shardId-000000000001", "shardId-000000000002"},
			wantParents: map[string][]string{"shardId-000000000001": {"shardId-000000000000"}, "shardId-000000000002": {"shardId-000000000000"}},
		},
		{
			name: "merge: the child after both parents, whatever their ids",
			give: []Shard{s("shardId-000000000000", "shardId-000000000005", "shardId-000000000003"), s("shardId-000000000003", "", ""),
				s("shardId-000000000005", "", "")},
			wantOrder:   []string{"shardId-000000000003", "shardId-000000000005", "shardId-000000000000"},
			wantParents: map[string][]string{"shardId-000000000000": {"shardId-000000000005", "shardId-000000000003"}},
		},
		{
			name: "split then merge of the children, listed children first",
			give: []Shard{s("shardId-000000000003", "shardId-000000000001", "shardId-000000000002"),
				s("shardId-000000000002", "shardId-000000000000", ""), s("shardId-000000000001", "shardId-000000000000", ""),
				s("shardId-000000000000", "", "")},
			wantOrder: []string{"shardId-000000000000", "shardId-000000000001", "shardId-000000000002", "shardId-000000000003"},
			wantParents: map[string][]string{"shardId-000000000001": {"shardId-000000000000"}, "shardId-000000000002": {"shardId-000000000000"},
				"shardId-000000000003": {"shardId-000000000001", "shardId-000000000002"}},
		},
		{
			name:      "a parent past retention is not waited for",
			give:      []Shard{s("shardId-000000000002", "shardId-000000000000", "")},
			wantOrder: []string{"shardId-000000000002"},
		},
		{
			name: "only the chosen shards, a chosen parent still first",
			give: []Shard{s("shardId-000000000000", "", ""), s("shardId-000000000001", "shardId-000000000000", ""),
				s("shardId-000000000002", "shardId-000000000000", "")},
			only:        []string{"shardId-000000000002", "shardId-000000000000"},
			wantOrder:   []string{"shardId-000000000000", "shardId-000000000002"},
			wantParents: map[string][]string{"shardId-000000000002": {"shardId-000000000000"}},
		},
		{
			name:        "a chosen child whose parent is not chosen",
			give:        []Shard{s("shardId-000000000000", "", ""), s("shardId-000000000001", "shardId-000000000000", "")},
			only:        []string{"shardId-000000000001"},
			wantOrder:   []string{"shardId-000000000001"},
			wantParents: map[string][]string{},
		},
		{
			name:      "an unknown chosen shard",
			give:      []Shard{s("shardId-000000000000", "", "")},
			only:      []string{"shardId-000000000009"},
			wantUsage: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := plan(tt.give, tt.only)
			var ue *UsageError
			if tt.wantUsage {
				if !errors.As(err, &ue) {
					t.Fatalf("err %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var order []string
			parents := map[string][]string{}
			pos := map[string]int{}
			for i, sh := range got {
				order = append(order, sh.ID)
				pos[sh.ID] = i
				if p := sh.parents(); len(p) > 0 {
					parents[sh.ID] = p
				}
			}
			if !reflect.DeepEqual(order, tt.wantOrder) {
				t.Errorf("order %v, want %v", order, tt.wantOrder)
			}
			if tt.wantParents == nil {
				tt.wantParents = map[string][]string{}
			}
			if !reflect.DeepEqual(parents, tt.wantParents) {
				t.Errorf("parents %v, want %v", parents, tt.wantParents)
			}
			for id, ps := range parents {
				for _, p := range ps {
					if pos[p] >= pos[id] {
						t.Errorf("%s comes before its parent %s", id, p)
					}
				}
			}
		})
	}
}

// TestPlanCycle: parents that form a cycle (never on a real stream) are an error, not a hang.
func TestPlanCycle(t *testing.T) {
	_, err := plan([]Shard{{ID: "shardId-000000000000", Parent: "shardId-000000000001"}, {ID: "shardId-000000000001", Parent: "shardId-000000000000"}}, nil)
	if err == nil {
		t.Fatal("a cycle was planned")
	}
}

// TestWouldWrite: the dry run's prediction of a conditional write, by the rule processor.Options.ConditionalWrites
// documents, on positions built by the processor's own encoder.
func TestWouldWrite(t *testing.T) {
	pos := func(shard, seq string) []byte {
		b, err := encodePosition(shard, seq)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name          string
		stored, write []byte
		want          bool
	}{
		{"no item", nil, pos("shardId-000000000000", "5"), true},
		{"an earlier record of the shard", pos("shardId-000000000000", "5"), pos("shardId-000000000000", "6"), true},
		{"the same record", pos("shardId-000000000000", "6"), pos("shardId-000000000000", "6"), true},
		{"a later record of the shard", pos("shardId-000000000000", "7"), pos("shardId-000000000000", "6"), false},
		{"a longer (later) sequence number", pos("shardId-000000000000", "10"), pos("shardId-000000000000", "9"), false},
		{"another shard", pos("shardId-000000000001", "1"), pos("shardId-000000000000", "9"), false},
		{"an unverified position", processor.UnverifiedPosition(pos("shardId-000000000000", "99")), pos("shardId-000000000000", "1"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wouldWrite(tt.stored, tt.write); got != tt.want {
				t.Errorf("wouldWrite = %v, want %v", got, tt.want)
			}
		})
	}
}
