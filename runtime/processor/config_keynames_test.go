package processor

import (
	"slices"
	"testing"
)

func TestConfigKeyNames(t *testing.T) {
	tests := []struct {
		name string
		give Config
		want []string
	}{
		{"zero value: the default event-id key", Config{}, []string{"id"}},
		{"partition key only", Config{PartitionKey: KeyAttribute{Name: "pk", Source: "order.id"}}, []string{"pk"}},
		{"partition and sort key", Config{PartitionKey: KeyAttribute{Name: "device"}, SortKey: &KeyAttribute{Name: "ts"}}, []string{"device", "ts"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.give.KeyNames(); !slices.Equal(got, tt.want) {
				t.Errorf("KeyNames() = %v, want %v", got, tt.want)
			}
		})
	}
}
