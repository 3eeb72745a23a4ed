package replication

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/dura-dev/dura/placement"
)

// TestReplicaSetsAtScale: every partition gets R distinct replicas led
// by its owner, and a lost member's in-sync removals fit one Raft
// command. The sizes of the scale table (README "Scale") run with
// DURA_BENCH=1:
//
//	DURA_BENCH=1 go test -run ReplicaSetsAtScale -v ./replication
func TestReplicaSetsAtScale(t *testing.T) {
	type size struct{ members, partitions int }
	sizes := []size{{3, 271}, {30, 271}, {30, 4093}}
	if os.Getenv("DURA_BENCH") != "" {
		sizes = append(sizes, size{3, 65521}, size{300, 4093}, size{300, 65521}, size{1000, 65521})
	}
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dm_%dp", sz.members, sz.partitions), func(t *testing.T) {
			ring := placement.RingConfig{Partitions: sz.partitions, ReplicationFactor: 20, Load: 1.25}
			var names []string
			s := &ClusterState{Ring: ring, Replication: Replication{Factor: 3, MinInSync: 2}, Epoch: 1, Members: map[string]*Member{}}
			for i := range sz.members {
				name := fmt.Sprintf("node-%04d", i)
				names = append(names, name)
				s.Members[name] = &Member{Name: name, Status: Active}
			}
			owners, err := placement.Assign(names, ring)
			if err != nil {
				t.Fatal(err)
			}
			s.Partitions = make([]Partition, sz.partitions)
			for i := range s.Partitions {
				s.Partitions[i].Owner = owners[i]
			}
			start := time.Now()
			s.placeReplicas()
			took := time.Since(start)
			want := min(3, sz.members)
			for i, p := range s.Partitions {
				if len(p.Replicas) != want || p.Replicas[0] != p.Owner {
					t.Fatalf("partition %d: replicas %v, owner %s", i, p.Replicas, p.Owner)
				}
				c := slices.Clone(p.Replicas)
				slices.Sort(c)
				if len(slices.Compact(c)) != want {
					t.Fatalf("partition %d: replicas %v not distinct", i, p.Replicas)
				}
			}
			// Every replica in sync, then node-0000 lost: its removals, one
			// per partition it is a replica of, in one command.
			var changes []InSyncChange
			for i := range s.Partitions {
				s.Partitions[i].InSync = s.Partitions[i].Replicas
				if p := s.Partitions[i]; p.Owner != names[0] && slices.Contains(p.InSync, names[0]) {
					changes = append(changes, InSyncChange{Partition: i, Version: p.Version, Remove: []string{names[0]}})
				}
			}
			b, _ := json.Marshal(Command{Kind: CmdInSync, InSync: changes})
			before := s.UnderReplicated()
			if err := s.Apply(Command{Kind: CmdInSync, InSync: changes}, nil); err != nil {
				t.Fatal(err)
			}
			if got := s.UnderReplicated() - before; got != len(changes) {
				t.Fatalf("%d partitions under-replicated after removing %s from %d", got, names[0], len(changes))
			}
			t.Logf("%d members, %d partitions: replica sets in %s; a lost member's in-sync removals: %d partitions, one command of %d bytes",
				sz.members, sz.partitions, took.Round(time.Microsecond), len(changes), len(b))
		})
	}
}
