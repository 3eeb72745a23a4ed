package cluster

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/objectstore"
	"github.com/dura-dev/dura/replication"
	"github.com/dura-dev/dura/rpc"
)

// followPlacement pulls partitions moving here and lets go of those that
// moved away, as st (the state followReplicas then sees too) says.
func (c *Cluster) followPlacement(st *replication.ClusterState) {
	if st == nil || len(st.Partitions) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, part := range st.Partitions {
		// A move this node completed may still show here as pending for a
		// moment (its handoff_done is committed, not yet applied here):
		// pulling it again would install the old copy over new writes.
		if part.Target == c.cfg.Name && part.Owner != c.cfg.Name && !c.installing[p].Load() && c.pulled[p] != part.Since {
			c.installing[p].Store(true)
			c.wg.Add(1)
			go func(p int, owner string, since uint64) {
				defer c.wg.Done()
				err := c.pull(p, owner, since)
				c.mu.Lock()
				c.installing[p].Store(false)
				c.mu.Unlock()
				if err != nil {
					c.pullFailed(p, owner, err)
				}
			}(p, part.Owner, part.Since)
		}
		mine := part.Owner == c.cfg.Name
		// A replica's copy belongs to the replica side (seed.go), which
		// replaces what was left here when the seeding installs: setting
		// it aside here could move a copy already seeded.
		replica := c.seeding[p].Load() || c.replicaCopy[p].Load()
		if c.owned[p] && !mine && part.Owner != "" && !replica {
			// Handed off and committed: our copy is no longer the object.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := c.rt.DropPartition(ctx, p)
			cancel()
			if err != nil {
				c.log.Error("cannot drop a handed-off partition", "partition", p, "err", err)
				continue
			}
			c.log.Info("partition handed off", "partition", p, "to", part.Owner)
		}
		c.owned[p] = mine
	}
}

// pull fetches partition p from its owner, verifies and installs it, then
// commits the handoff.
func (c *Cluster) pull(p int, owner string, since uint64) error {
	st := c.state.Load()
	m := st.Members[owner]
	if m == nil {
		return fmt.Errorf("owner %q unknown", owner)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ctx, stall := withStallGuard(ctx)
	defer stall.stop()
	if slices.Contains(st.Partitions[p].InSync, c.cfg.Name) && c.replicaCopy[p].Load() {
		return c.takeOver(ctx, p, rpc.Peer{Name: m.Name, Addr: m.Raft}, since)
	}
	q := url.Values{"to": {c.cfg.Name}, "since": {strconv.FormatUint(since, 10)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.Raft+"/v1/internal/partitions/"+strconv.Itoa(p)+"/archive?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := c.peers.Do(rpc.Peer{Name: m.Name, Addr: m.Raft}, req)
	if err != nil {
		return stalled(ctx, err)
	}
	defer resp.Body.Close()
	dir, err := os.MkdirTemp(filepath.Join(c.rt.DataDir()), ".incoming-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	err = receiveFiles(stall.wrap(resp.Body), dir, c.rt.MaxObjectBytes(), func(path string) error {
		return objectstore.ValidateImport(path, c.rt.MaxObjectBytes())
	})
	if errors.Is(err, errEndedEarly) {
		return fmt.Errorf("archive of partition %d ended early", p)
	}
	if err != nil {
		return stalled(ctx, err)
	}
	// Install only for the move this pull was for: never over a copy this
	// node serves, never for a move that was cancelled or replaced.
	cur := c.state.Load().Partitions[p]
	if cur.Owner != owner || cur.Target != c.cfg.Name || cur.Since != since {
		return fmt.Errorf("partition %d changed while it was pulled (now owner %q, target %q, since %d): archive discarded", p, cur.Owner, cur.Target, cur.Since)
	}
	c.streams[p].forgetFollowers()
	if err := c.rt.AdoptPartition(p, dir); err != nil {
		return err
	}
	if err := c.Apply(ctx, replication.Command{Kind: replication.CmdHandoffDone, Partition: p, Name: c.cfg.Name, Epoch: since}); err != nil {
		return err
	}
	c.mu.Lock()
	c.pulled[p] = since
	c.mu.Unlock()
	c.log.Info("partition installed", "partition", p, "from", owner)
	return nil
}

// takeOver completes a move of partition p to this node, an in-sync
// replica: it has every acknowledged write already, so it only waits for
// the old owner to drain (an archive of nothing), readies its copy and
// commits the move. The old owner's other replicas are seeded again.
func (c *Cluster) takeOver(ctx context.Context, p int, from rpc.Peer, since uint64) error {
	q := url.Values{"to": {c.cfg.Name}, "since": {strconv.FormatUint(since, 10)}, "drain": {"1"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+from.Addr+"/v1/internal/partitions/"+strconv.Itoa(p)+"/archive?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := c.peers.Do(from, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	keep, err := readDrain(resp.Body)
	if err != nil {
		return fmt.Errorf("drain of partition %d on %s did not complete: %v", p, from.Name, err)
	}
	cur := c.state.Load().Partitions[p]
	if cur.Owner != from.Name || cur.Target != c.cfg.Name || cur.Since != since {
		return fmt.Errorf("partition %d changed while %s drained it", p, from.Name)
	}
	// The old owner may have taken this node out of the in-sync set while
	// it drained (a write this copy missed, acknowledged without it): then
	// the next try pulls the old owner's files instead. The state machine
	// checks it again when the handoff commits (FromCopy).
	if !slices.Contains(cur.InSync, c.cfg.Name) {
		return fmt.Errorf("partition %d: this node left the in-sync set while %s drained it", p, from.Name)
	}
	c.recv.Stop(p)
	c.streams[p].forgetFollowers()
	if err := c.rt.PromoteReplica(p); err != nil {
		return err
	}
	// The replicas kept in the set follow this node's records from the
	// first: a stream to one cut off in the past starts again.
	for _, m := range keep {
		c.ship.Resume(m, p)
	}
	if err := c.Apply(ctx, replication.Command{Kind: replication.CmdHandoffDone, Partition: p, Name: c.cfg.Name, Epoch: since, FromCopy: true, Keep: keep}); err != nil {
		return err
	}
	c.replicaCopy[p].Store(false)
	c.mu.Lock()
	c.pulled[p] = since
	c.mu.Unlock()
	c.log.Info("partition taken over from its in-sync copy", "partition", p, "from", from.Name)
	return nil
}

// drainKeep names the entry of a drain's answer that lists the in-sync
// replicas the old owner vouches for (JSON), before END.
const drainKeep = "IN-SYNC"

// readDrain reads a drain's answer: the replicas vouched for, then END.
func readDrain(r io.Reader) ([]string, error) {
	tr := tar.NewReader(r)
	var keep []string
	for {
		h, err := tr.Next()
		if err != nil {
			return nil, err
		}
		switch h.Name {
		case "END":
			return keep, nil
		case drainKeep:
			if err := json.NewDecoder(io.LimitReader(tr, 1<<16)).Decode(&keep); err != nil {
				return nil, fmt.Errorf("replicas vouched for: %w", err)
			}
		default:
			return nil, fmt.Errorf("unexpected entry %q in a drain", h.Name)
		}
	}
}

// vouch names the in-sync replicas of partition p, other than this node
// and to, that hold every record this node shipped for p (called once p
// is drained here, so none follows): all of them, or none when a write's
// outcome is in doubt, since one may lack it and another have it.
func (c *Cluster) vouch(p int, to string) []string {
	s := &c.streams[p]
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.doubt) > 0 {
		return nil
	}
	var keep []string
	for _, m := range c.state.Load().Partitions[p].InSync {
		if m != c.cfg.Name && m != to {
			keep = append(keep, m)
		}
	}
	return keep
}

// errEndedEarly: a stream of object files stopped before its END.
var errEndedEarly = errors.New("ended early")

// receiveFiles writes the object files of a tar stream ended by END (a
// handoff archive, a replica's snapshot) into dir, synced, each checked
// by verify and no larger than maxBytes.
func receiveFiles(r io.Reader, dir string, maxBytes int64, verify func(path string) error) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return errEndedEarly
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		if h.Name == "END" {
			return nil
		}
		id, ok := node.ObjectFileID(h.Name)
		if !ok || filepath.Base(h.Name) != h.Name {
			return fmt.Errorf("unexpected archive entry %q", h.Name)
		}
		path := filepath.Join(dir, id+".db")
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, io.LimitReader(tr, maxBytes+1))
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("receive %s: %w", h.Name, err)
		}
		if err := verify(path); err != nil {
			return fmt.Errorf("verify %s: %w", h.Name, err)
		}
	}
}

// PartitionArchive streams partition p to its new owner: the fence
// already refuses p (it is moving), so once its events drain its files
// are still. drain sends no files: the new owner is an in-sync replica.
func (c *Cluster) PartitionArchive(ctx context.Context, p int, to string, since uint64, drain bool, w io.Writer) error {
	st := c.state.Load()
	if st == nil || p < 0 || p >= len(st.Partitions) {
		return fmt.Errorf("%w: no partition %d", apierr.ErrNotFound, p)
	}
	if !c.caughtUp.Load() {
		return fmt.Errorf("%w: catching up with the Raft log", apierr.ErrOwnerUnavailable)
	}
	if err := c.dataMissing(st); err != nil {
		return err // never hand on an empty copy as the partition
	}
	part := st.Partitions[p]
	if part.Owner != c.cfg.Name || part.Target == "" {
		return fmt.Errorf("%w: partition %d is not moving away from here", apierr.ErrConflict, p)
	}
	if part.Target != to || part.Since != since {
		return fmt.Errorf("%w: partition %d is moving to %s since epoch %d, not to %s since %d", apierr.ErrConflict, p, part.Target, part.Since, to, since)
	}
	if err := c.rt.ClosePartition(ctx, p); err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	entries, err := os.ReadDir(c.rt.PartitionDir(p))
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if drain {
		entries = nil
	}
	for _, e := range entries {
		if _, ok := node.ObjectFileID(e.Name()); !ok {
			continue
		}
		if err := addExport(tw, filepath.Join(c.rt.PartitionDir(p), e.Name()), e.Name()); err != nil {
			return err
		}
	}
	// The move may have completed (a puller that asked twice) or changed
	// meanwhile, and this node's copy been set aside mid-read: then no
	// END, and the puller discards what it got.
	if now := c.state.Load().Partitions[p]; now.Owner != c.cfg.Name || now.Target != to || now.Since != since {
		return fmt.Errorf("%w: partition %d moved on while it was archived", apierr.ErrConflict, p)
	}
	if drain {
		b, _ := json.Marshal(c.vouch(p, to))
		if err := tw.WriteHeader(&tar.Header{Name: drainKeep, Mode: 0o600, Size: int64(len(b))}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	// The alarms live in the replicated schedule: the new owner arms them
	// from there once the partition is ready on it. END marks a complete
	// archive.
	if err := tw.WriteHeader(&tar.Header{Name: "END", Mode: 0o600}); err != nil {
		return err
	}
	return tw.Close()
}

// addExport writes a consistent copy of one object file into the archive.
func addExport(tw *tar.Writer, path, name string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".handoff-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := objectstore.Export(path, tmp)
	if err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: n}); err != nil {
		return err
	}
	_, err = io.Copy(tw, tmp)
	return err
}

// pullFailed logs a failed pull: it is retried, and an owner catching up
// or restarting refuses for a while, so one WARN per owner per 30 s
// (with how many failed since) and DEBUG otherwise.
func (c *Cluster) pullFailed(p int, owner string, err error) {
	lvl, n := c.pullWarns.Level(owner)
	c.log.Log(context.Background(), lvl, "handoff pull failed; will retry", "partition", p, "from", owner, "err", err, "failed_since_warn", n)
}
