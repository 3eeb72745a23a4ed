package cluster

import (
	"context"
	"time"

	"github.com/dura-dev/dura/replication"
)

// raftSchedule is the alarm schedule of a cluster: committed through Raft
// (by way of the leader), read from this node's copy.
type raftSchedule struct{ c *Cluster }

// PutAlarm returns once the change is committed (on a quorum); this
// node's copy may apply it a moment later, which Runtime.getAlarm covers.
func (s raftSchedule) PutAlarm(a replication.Alarm) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.c.Apply(ctx, replication.Command{Kind: replication.CmdPutAlarm, Alarm: &a})
}

// DeleteAlarm returns once the deletion is committed.
func (s raftSchedule) DeleteAlarm(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Name too: nodes of the previous version read the ID there, and every
	// node must apply the command alike during a rolling upgrade.
	return s.c.Apply(ctx, replication.Command{Kind: replication.CmdDeleteAlarm, ObjectID: id, Name: id})
}

// ClearFired queues the clearing of an alarm that ran for the next batch.
func (s raftSchedule) ClearFired(id string, at time.Time) {
	select {
	case s.c.fired <- replication.FiredAlarm{ObjectID: id, At: at}:
	case <-s.c.stop:
	}
}

// Fired alarms are cleared through Raft in batches of up to
// firedBatch, each sent firedLinger after its first entry at the latest.
const (
	firedBatch  = 512
	firedLinger = 10 * time.Millisecond
)

// clearFiredLoop commits the clearing of alarms that ran, many per Raft
// entry. A batch that cannot be committed is retried; at stop, what is
// left gets one last try (failing that, those alarms run again after a
// restart: at least once).
func (c *Cluster) clearFiredLoop() {
	var batch []replication.FiredAlarm
	for {
		select {
		case f := <-c.fired:
			batch = append(batch, f)
		case <-c.stop:
			c.lastFired(batch)
			return
		}
		linger := time.After(firedLinger)
	fill:
		for len(batch) < firedBatch {
			select {
			case f := <-c.fired:
				batch = append(batch, f)
			case <-linger:
				break fill
			case <-c.stop:
				break fill
			}
		}
		for {
			err := c.clearFired(batch, 10*time.Second)
			if err == nil {
				batch = batch[:0]
				break
			}
			c.log.Warn("cannot clear alarms that ran; retrying", "alarms", len(batch), "err", err)
			select {
			case <-c.stop:
				c.lastFired(batch)
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

// lastFired tries once, at stop, to clear batch and what is still queued.
func (c *Cluster) lastFired(batch []replication.FiredAlarm) {
	for len(c.fired) > 0 {
		batch = append(batch, <-c.fired)
	}
	if len(batch) == 0 {
		return
	}
	if err := c.clearFired(batch, 2*time.Second); err != nil {
		c.log.Warn("alarms that ran stay scheduled and will run again", "alarms", len(batch), "err", err)
	}
}

// clearFired commits one batch of alarms that ran.
func (c *Cluster) clearFired(batch []replication.FiredAlarm, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.Apply(ctx, replication.Command{Kind: replication.CmdDeleteAlarm, Fired: batch})
}

func (s raftSchedule) GetAlarm(id string) (replication.Alarm, bool, error) {
	if s.c.raft == nil {
		return replication.Alarm{}, false, nil
	}
	a, ok := s.c.raft.Alarm(id)
	return a, ok, nil
}

func (s raftSchedule) Alarms() ([]replication.Alarm, error) {
	if s.c.raft == nil {
		return nil, nil // not started: timers follow ownership once it is
	}
	return s.c.raft.Alarms(nil), nil
}

// syncTimers arms exactly the alarms of the partitions this node owns
// and serves, whenever that set changes (join, leave, handoff, restart).
func (c *Cluster) syncTimers(st *replication.ClusterState) {
	mine := make(map[int]bool)
	for p, part := range st.Partitions {
		if part.Owner == c.cfg.Name && part.Ready() {
			mine[p] = true
		}
	}
	if sameSet(mine, c.timed) {
		return
	}
	c.timed = mine
	for _, a := range c.raft.Alarms(nil) {
		if mine[a.Partition] {
			c.rt.ArmAlarm(a)
		} else {
			c.rt.DisarmAlarm(a.ObjectID)
		}
	}
}

func sameSet(a, b map[int]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// Alarms lists the replicated schedule as this node has it.
func (c *Cluster) Alarms() []replication.Alarm { return c.raft.Alarms(nil) }

// onAlarm keeps the timers in step with each committed alarm change,
// wherever it came from (this node's events, or log replay after a
// restart; a restored snapshot is armed by syncTimers once caught up):
// an alarm of a partition this node owns is armed here.
func (c *Cluster) onAlarm(a replication.Alarm, deleted bool, st *replication.ClusterState) {
	if c.rt.AppliedHere(a, deleted) {
		return // this node already committed a newer change and armed it
	}
	if !c.caughtUp.Load() {
		return // replaying: syncTimers arms everything once caught up
	}
	mine := a.Partition < len(st.Partitions) && st.Partitions[a.Partition].Owner == c.cfg.Name && st.Partitions[a.Partition].Ready()
	if deleted || !mine {
		c.rt.DisarmAlarm(a.ObjectID)
		return
	}
	c.rt.ArmAlarm(a)
}
