package replication

import (
	"sync"

	"github.com/hashicorp/raft"
)

// pipelinedTransport is Raft's network transport with a fix for its
// pipelined replication (hashicorp/raft v1.8.0). A pipeline hands each
// decoded response to a channel of the transport's in-flight size (0 by
// default), and Raft stops reading that channel when a follower answers
// with a newer term or refuses an append, while its sender may still send
// (a best-effort last batch on stop, or a trigger that raced the stop).
// The decoder then blocks handing over a response nobody reads, the sender
// blocks handing it the next request, and the pipeline is closed only when
// the sender returns: replication to that follower, and Raft's Shutdown,
// hang for good. Here each pipeline's responses are drained into a queue
// of their own, so the decoder never waits on Raft.
//
// The transport also notes every append a follower accepted (answers, if
// set), whether sent by a heartbeat, a plain append or a pipeline: Raft
// reports a follower's failing heartbeats, but not that its appends go
// through meanwhile (see contactTracker).
type pipelinedTransport struct {
	*raft.NetworkTransport
	answers *answers
}

// AppendEntries sends one append (a heartbeat, or entries outside a
// pipeline).
func (t pipelinedTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.NetworkTransport.AppendEntries(id, target, args, resp)
	if err == nil && resp.Success {
		t.answers.heard(id)
	}
	return err
}

// AppendEntriesPipeline wraps the transport's pipeline.
func (t pipelinedTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := t.NetworkTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	d := newDrainedPipeline(p)
	if t.answers != nil {
		d.accepted = func() { t.answers.heard(id) }
	}
	d.start()
	return d, nil
}

// drainedPipeline reads its inner pipeline's responses as they come and
// queues them until Raft takes them; the queue holds at most what was
// sent, and only grows once Raft has stopped reading, for the sends of a
// pipeline about to close.
type drainedPipeline struct {
	raft.AppendPipeline
	out      chan raft.AppendFuture
	closed   chan struct{}
	once     sync.Once
	done     sync.WaitGroup
	accepted func() // called for each append the follower accepted, if set
}

// newDrainedPipeline wraps inner; start begins the drain.
func newDrainedPipeline(inner raft.AppendPipeline) *drainedPipeline {
	return &drainedPipeline{AppendPipeline: inner, out: make(chan raft.AppendFuture), closed: make(chan struct{})}
}

func (p *drainedPipeline) start() {
	p.done.Add(1)
	go p.drain()
}

func (p *drainedPipeline) drain() {
	defer p.done.Done()
	in := p.AppendPipeline.Consumer()
	var queue []raft.AppendFuture
	for {
		var out chan raft.AppendFuture
		var next raft.AppendFuture
		if len(queue) > 0 {
			out, next = p.out, queue[0]
		}
		select {
		case f := <-in:
			// The decoder hands over a future once its response is in.
			if p.accepted != nil && f.Error() == nil && f.Response().Success {
				p.accepted()
			}
			queue = append(queue, f)
		case out <- next:
			queue[0] = nil
			queue = queue[1:]
		case <-p.closed:
			return
		}
	}
}

// Consumer is where Raft reads the responses, in the order sent.
func (p *drainedPipeline) Consumer() <-chan raft.AppendFuture { return p.out }

// Close closes the inner pipeline and stops the drain.
func (p *drainedPipeline) Close() error {
	err := p.AppendPipeline.Close()
	p.once.Do(func() { close(p.closed) })
	p.done.Wait()
	return err
}
