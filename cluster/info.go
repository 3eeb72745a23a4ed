package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/replication"
	"github.com/dura-dev/dura/rpc"
)

// LocalObjects lists this node's catalog (its share of a cluster listing).
func (c *Cluster) LocalObjects(ctx context.Context, class, after string, limit int) (rpc.ObjectList, error) {
	return c.rt.LocalObjects(ctx, class, after, limit)
}

// Info describes the cluster for /v1/cluster.
func (c *Cluster) Info() rpc.ClusterInfo {
	st := c.state.Load()
	leader, _ := c.raft.Leader()
	info := rpc.ClusterInfo{Node: c.cfg.Name, Leader: leader, Epoch: st.Epoch, Partitions: len(st.Partitions), CatchingUp: !c.caughtUp.Load()}
	gossip := map[string]string{}
	for _, p := range c.ml.Peers() {
		gossip[p.Name] = p.State
	}
	counts := st.Counts()
	primaries, replicas := st.ReplicaCounts()
	info.ReplicationFactor = min(st.Replication.Copies(), max(len(st.ActiveMembers()), 1))
	info.UnderReplicated = st.UnderReplicated()
	for _, p := range st.Lagging(rpc.MaxLaggingListed) {
		part := st.Partitions[p]
		info.Lagging = append(info.Lagging, rpc.PartitionCopies{Partition: p, Primary: part.Owner,
			Replicas: part.Replicas, InSync: part.InSync, Version: part.Version, Target: part.Target})
	}
	names := make([]string, 0, len(st.Members))
	for n := range st.Members {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		m := st.Members[n]
		status := gossip[n]
		switch {
		case m.Status == replication.Left:
			status = "left"
		case m.Status == replication.Removed:
			status = "removed"
		case status == "":
			status = "dead"
		}
		info.Members = append(info.Members, rpc.Member{Name: n, HTTP: m.HTTP, Status: status, Partitions: counts[n], Primaries: primaries[n], Replicas: replicas[n], DataMissing: m.DataLost})
	}
	for _, p := range st.Partitions {
		m := st.Members[p.Owner]
		switch {
		case m == nil || m.DataLost || gossip[p.Owner] == "dead" || gossip[p.Owner] == "":
			info.UnavailablePartitions++
		case !p.Ready():
			info.MovingPartitions++
		}
		if st.PendingHome(p) != "" {
			info.MovesPending++
		}
	}
	return info
}

// ListObjects merges every active member's share of a listing, in key
// order (class, then name), a page at a time.
func (c *Cluster) ListObjects(ctx context.Context, class, after string, limit int) (rpc.ObjectList, error) {
	st := c.state.Load()
	var all []rpc.ObjectInfo
	var unavailable []string
	more := false
	for _, name := range st.ActiveMembers() {
		var part rpc.ObjectList
		if name == c.cfg.Name {
			var err error
			if part, err = c.rt.LocalObjects(ctx, class, after, limit); err != nil {
				return rpc.ObjectList{}, err
			}
		} else {
			q := url.Values{"class": {class}, "after": {after}, "limit": {strconv.Itoa(limit)}}.Encode()
			b, err := c.peers.Call(ctx, rpc.Peer{Name: name, Addr: st.Members[name].Raft}, http.MethodGet, "/v1/internal/objects?"+q, nil)
			if err != nil {
				// Answer what the live members hold, and say whose
				// objects are missing.
				c.log.Debug("list objects: member not asked", "member", name, "err", err)
				unavailable = append(unavailable, name)
				continue
			}
			if err := json.Unmarshal(b, &part); err != nil {
				return rpc.ObjectList{}, fmt.Errorf("%w: list objects on %s: %v", apierr.ErrInternal, name, err)
			}
		}
		all = append(all, part.Objects...)
		if part.Cursor != "" {
			more = true
		}
	}
	key := func(o rpc.ObjectInfo) string { return o.Class + "\x00" + o.Name }
	sort.Slice(all, func(i, j int) bool { return key(all[i]) < key(all[j]) })
	all = dedupeObjects(all, key, st.Partitions)
	out := rpc.ObjectList{Objects: all, Unavailable: unavailable}
	if len(all) > limit {
		out.Objects, more = all[:limit], true
	}
	if out.Objects == nil {
		out.Objects = []rpc.ObjectInfo{}
	}
	if more && len(out.Objects) > 0 {
		out.Cursor = base64.RawURLEncoding.EncodeToString([]byte(key(out.Objects[len(out.Objects)-1])))
	}
	return out, nil
}

// dedupeObjects keeps one entry per object of a sorted list: replicas
// catalog the objects of the partitions they hold a copy of, so an object
// may be listed by several members; the entry of its partition's owner
// wins.
func dedupeObjects(all []rpc.ObjectInfo, key func(rpc.ObjectInfo) string, parts []replication.Partition) []rpc.ObjectInfo {
	out := all[:0]
	for _, o := range all {
		if n := len(out); n > 0 && key(out[n-1]) == key(o) {
			if o.Partition < len(parts) && parts[o.Partition].Owner == o.Owner {
				out[n-1] = o
			}
			continue
		}
		out = append(out, o)
	}
	return out
}

// State is this node's copy of the committed cluster state.
func (c *Cluster) State() *replication.ClusterState { return c.state.Load().Clone() }

// RaftServers lists the Raft configuration as this node sees it.
func (c *Cluster) RaftServers() ([]replication.Server, error) { return c.raft.Servers() }

// Isolate cuts this node off from the cluster as a network partition
// would, for tests: gossip and Raft stop, the HTTP API keeps answering.
// Fencing must then refuse every event once the lease runs out.
func (c *Cluster) Isolate() {
	c.ml.Close()
	c.raft.Close()
	c.port.Close()
}

// Addrs are the Raft and gossip addresses this node listens on.
func (c *Cluster) Addrs() (raftAddr, gossipAddr string) { return c.raft.Addr(), c.ml.Addr() }

// Replicas are the members holding partition p, primary first.
func (c *Cluster) Replicas(p int) []string {
	st := c.state.Load()
	if st == nil || p >= len(st.Partitions) {
		return nil
	}
	if r := st.Partitions[p].Replicas; len(r) > 0 {
		return r
	}
	if o := st.Partitions[p].Owner; o != "" {
		return []string{o} // a state from before replication
	}
	return nil
}
