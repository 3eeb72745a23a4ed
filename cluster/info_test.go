package cluster

import (
	"testing"

	"github.com/dura-dev/dura/replication"
	"github.com/dura-dev/dura/rpc"
)

func TestDedupeObjectsKeepsTheOwnersEntry(t *testing.T) {
	parts := []replication.Partition{{Owner: "n1"}, {Owner: "n2"}}
	key := func(o rpc.ObjectInfo) string { return o.Class + "\x00" + o.Name }
	for _, tc := range []struct {
		name string
		in   []rpc.ObjectInfo
		want []string // owners of the entries kept, in order
	}{
		{"no duplicates", []rpc.ObjectInfo{{Class: "c", Name: "a", Owner: "n1"}, {Class: "c", Name: "b", Partition: 1, Owner: "n2"}}, []string{"n1", "n2"}},
		{"replica listed first", []rpc.ObjectInfo{{Class: "c", Name: "a", Partition: 1, Owner: "n3"}, {Class: "c", Name: "a", Partition: 1, Owner: "n2"}}, []string{"n2"}},
		{"owner listed first", []rpc.ObjectInfo{{Class: "c", Name: "a", Owner: "n1"}, {Class: "c", Name: "a", Owner: "n3"}, {Class: "c", Name: "z", Owner: "n1"}}, []string{"n1", "n1"}},
		{"no owner's entry", []rpc.ObjectInfo{{Class: "c", Name: "a", Owner: "n3"}, {Class: "c", Name: "a", Owner: "n4"}}, []string{"n3"}},
	} {
		got := dedupeObjects(tc.in, key, parts)
		var owners []string
		for _, o := range got {
			owners = append(owners, o.Owner)
		}
		if len(owners) != len(tc.want) {
			t.Fatalf("%s: kept %v, want %v", tc.name, owners, tc.want)
		}
		for i := range owners {
			if owners[i] != tc.want[i] {
				t.Fatalf("%s: kept %v, want %v", tc.name, owners, tc.want)
			}
		}
	}
}
