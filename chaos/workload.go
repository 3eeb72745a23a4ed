package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/dura-dev/dura/rpc"
)

// Workload names.
const (
	Counters  = "counters"
	Bank      = "bank"
	Registers = "registers"
	Alarms    = "alarms"
	Sharded   = "sharded"
)

// Workloads lists them all.
var Workloads = []string{Counters, Bank, Registers, Alarms, Sharded}

// driver runs the workloads of a scenario against a cluster.
type driver struct {
	c       *Cluster
	h       *History
	objects int // objects per workload
	clients int // concurrent clients per workload
	hook    *webhook
}

// pick is a random node to send a request to (any node the cluster has,
// running or not: a client does not know).
func (d *driver) pick(r *rand.Rand) int { return r.IntN(len(d.c.nodes())) }

// exec runs one operation through node entry and fills in its times,
// executing node and outcome; the caller adds what it learned and
// records it.
func (d *driver) exec(op Op, entry int, fn func(ctx context.Context, entry int) (served, error)) Op {
	op.Entry = d.c.Nodes[entry].Name
	op.Invoke = d.h.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	node, err := fn(ctx, entry)
	cancel()
	op.Complete = d.h.Now()
	op.Node, op.Epoch = node.Node, node.Epoch
	op.Outcome, op.Err = classify(err)
	return op
}

// run starts the workload's clients; they stop when stop closes.
func (d *driver) run(workload string, stop <-chan struct{}, wg *sync.WaitGroup) {
	for cl := range d.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(cl), uint64(time.Now().UnixNano())))
			seen := map[string]int64{} // registers: the last value this client saw
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var op Op
				switch workload {
				case Counters:
					op = d.increment(r, cl)
				case Registers:
					op = d.register(r, cl, i, seen)
				case Bank:
					op = d.bankOp(r, cl)
				case Alarms:
					op = d.setAlarm(r, cl, i)
				case Sharded:
					op = d.shardedIncrement(r, cl)
				}
				pause := 5 * time.Millisecond
				if op.Outcome != OK {
					pause = 100 * time.Millisecond // do not hammer an unavailable object
				}
				if workload == Alarms {
					pause = 150 * time.Millisecond
				}
				select {
				case <-stop:
					return
				case <-time.After(pause):
				}
			}
		}()
	}
}

// counters: increments return the new value.

func counterName(k int) string { return fmt.Sprintf("cnt-%d", k) }

func (d *driver) increment(r *rand.Rand, cl int) Op {
	obj := counterName(r.IntN(d.objects))
	var out struct{ Value int64 }
	op := d.exec(Op{Workload: Counters, Kind: "incr", Object: obj, Client: cl}, d.pick(r), func(ctx context.Context, entry int) (served, error) {
		return d.callJSON(ctx, entry, "POST", "counter", obj, "/increment", nil, &out)
	})
	op.Result = out.Value
	d.h.Add(op)
	return op
}

func (d *driver) readCounter(obj string, entry int) Op {
	var out struct{ Value int64 }
	op := d.exec(Op{Workload: Counters, Kind: "read", Object: obj}, entry, func(ctx context.Context, entry int) (served, error) {
		return d.callJSON(ctx, entry, "GET", "counter", obj, "/", nil, &out)
	})
	op.Result = out.Value
	d.h.Add(op)
	return op
}

// registers: read, write and compare-and-set on one row, through SQL.

func registerName(k int) string { return fmt.Sprintf("reg-%d", k) }

var registerSetup = []rpc.Statement{
	{SQL: "CREATE TABLE IF NOT EXISTS r (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)"},
	{SQL: "INSERT OR IGNORE INTO r VALUES (1, 0)"},
}

// register reads, writes or compare-and-sets one register. Every value
// written is unique (client and sequence number), so a read names the
// write it saw and the checker need not guess; a compare-and-set expects
// the last value the client saw, so that it can succeed.
func (d *driver) register(r *rand.Rand, cl, seq int, seen map[string]int64) Op {
	obj := registerName(r.IntN(d.objects))
	entry := d.pick(r)
	v := int64(cl+1)*1_000_000_000 + int64(seq) + 1
	var op Op
	switch n := r.IntN(10); {
	case n < 4:
		op = d.registerRead(obj, entry, cl)
		if op.Outcome == OK {
			seen[obj] = op.Result
		}
	case n < 7:
		op = d.sqlOp(Op{Workload: Registers, Kind: "write", Object: obj, Client: cl, Arg: v}, entry,
			rpc.Statement{SQL: "UPDATE r SET v = ? WHERE id = 1", Params: []any{v}})
		if op.Outcome == OK {
			seen[obj] = v
		}
	default:
		old := seen[obj]
		op = d.sqlOp(Op{Workload: Registers, Kind: "cas", Object: obj, Client: cl, Arg: old, Arg2: v}, entry,
			rpc.Statement{SQL: "UPDATE r SET v = ? WHERE id = 1 AND v = ?", Params: []any{v, old}})
		if op.Outcome == OK && op.Success {
			seen[obj] = v
		}
	}
	return op
}

func (d *driver) registerRead(obj string, entry, cl int) Op {
	return d.sqlOp(Op{Workload: Registers, Kind: "read", Object: obj, Client: cl}, entry,
		rpc.Statement{SQL: "SELECT v FROM r WHERE id = 1"})
}

// sqlOp runs the register setup and stmt in one transaction and fills in
// the result: a read's value, whether a compare-and-set applied.
func (d *driver) sqlOp(op Op, entry int, stmt rpc.Statement) Op {
	var res []rpc.SQLResult
	op = d.exec(op, entry, func(ctx context.Context, entry int) (served, error) {
		var err error
		var node served
		res, node, err = d.sqlWithNode(ctx, entry, "db", op.Object, append(registerSetup[:2:2], stmt)...)
		return node, err
	})
	if op.Outcome == OK {
		last := res[len(res)-1]
		switch op.Kind {
		case "read":
			if len(last.Rows) == 1 {
				op.Result = toInt64(last.Rows[0][0])
			}
		case "cas":
			op.Success = last.Changes == 1
		}
	}
	d.h.Add(op)
	return op
}

// bank: transfers between the accounts of one object (bank.go).

func (d *driver) bankSetup(ctx context.Context) error {
	var stmts []rpc.Statement
	for a := range bankAccounts {
		stmts = append(stmts, rpc.Statement{SQL: "INSERT OR IGNORE INTO accounts (user_id, balance) VALUES (?, ?)", Params: []any{fmt.Sprint("a", a), bankInitial}})
	}
	return retry(ctx, func() error {
		_, err := d.c.Admin(d.c.Running()[0]).SQL(ctx, "accounts", bankObject, stmts...)
		return err
	})
}

// alarms: each reminder object gets one reminder, due 1-4 s later; the
// webhook records every delivery.

func (d *driver) setAlarm(r *rand.Rand, cl, i int) Op {
	obj := fmt.Sprintf("rem-%d-%d", cl, i)
	at := time.Now().Add(time.Second + time.Duration(r.IntN(3000))*time.Millisecond).UnixMilli()
	body, _ := json.Marshal(map[string]any{"at": at, "url": d.hook.url})
	op := d.exec(Op{Workload: Alarms, Kind: "set", Object: obj, Client: cl, Arg: at}, d.pick(r), func(ctx context.Context, entry int) (served, error) {
		return d.callJSON(ctx, entry, "PUT", "reminders", obj, "/", body, nil)
	})
	d.h.Add(op)
	return op
}

// webhook receives reminder deliveries. The scenarios have it answer
// each after 200-500 ms, so that a run spans [started, answered] long
// enough for two nodes running one reminder at once to overlap visibly.
type webhook struct {
	url      string
	srv      *http.Server
	slowMin  time.Duration
	slowSpan time.Duration
	mu       sync.Mutex
	got      []delivery
}

// delivery is one run of a reminder as the webhook saw it. Started is
// from the POST (the run's start on its node); Received and Answered are
// the webhook's, all unix ms on this machine's clock.
type delivery struct {
	Object   string `json:"object"`
	At       int64  `json:"at"`
	Started  int64  `json:"started"`
	Node     string `json:"node"`
	Retry    int    `json:"retry"`
	Received int64  `json:"received"`
	Answered int64  `json:"answered"`
}

// startWebhook listens on host; it answers each delivery after slowMin
// plus up to slowSpan.
func startWebhook(host string, slowMin, slowSpan time.Duration) (*webhook, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, err
	}
	w := &webhook{url: "http://" + ln.Addr().String() + "/hook", slowMin: slowMin, slowSpan: slowSpan}
	w.srv = &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var d delivery
		if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
			http.Error(rw, err.Error(), 400)
			return
		}
		d.Received = time.Now().UnixMilli()
		select {
		case <-r.Context().Done():
			return // the run gave up: not an accepted delivery
		case <-time.After(w.slowMin + rand.N(w.slowSpan+1)):
		}
		d.Answered = time.Now().UnixMilli()
		w.mu.Lock()
		w.got = append(w.got, d)
		w.mu.Unlock()
		rw.WriteHeader(http.StatusOK)
	})}
	go w.srv.Serve(ln)
	return w, nil
}

func (w *webhook) deliveries() []delivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]delivery(nil), w.got...)
}

func (w *webhook) close() { w.srv.Close() }

// helpers

// callJSON calls an object route through node entry and decodes the
// answer into out (if set); it returns the executing node and its epoch.
func (d *driver) callJSON(ctx context.Context, entry int, method, class, name, path string, body []byte, out any) (served, error) {
	return d.c.do(ctx, entry, method, "/objects"+rpc.ObjectPath(class, name)+path, body, out)
}

// sqlWithNode runs statements in one transaction through node entry and
// returns the results and the executing node and its epoch.
func (d *driver) sqlWithNode(ctx context.Context, entry int, class, name string, stmts ...rpc.Statement) ([]rpc.SQLResult, served, error) {
	body, _ := json.Marshal(rpc.SQLRequest{Statements: stmts})
	var out rpc.SQLResponse
	node, err := d.c.do(ctx, entry, "POST", "/v1/objects"+rpc.ObjectPath(class, name)+"/sql", body, &out)
	return out.Results, node, err
}

func toInt64(v any) int64 {
	switch n := v.(type) {
	case float64:
		return int64(n)
	case int64:
		return n
	case json.Number:
		i, _ := n.Int64()
		return i
	}
	return 0
}

// retry calls fn until it succeeds or ctx ends.
func retry(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
