package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/dura-dev/dura/internal/testutil"
	"github.com/dura-dev/dura/node"
)

// tick is a class whose alarm records each run in its own table:
// fired(at, scheduled, node, retry). POST /arm?at=MS sets the alarm,
// POST /fail?n=K makes the next K runs fail, GET / lists the runs.
type tick struct {
	st   *node.State
	node string
}

func registerTick(rt *node.Runtime) error {
	return rt.Register("tick", func(st *node.State) (node.Object, error) {
		err := st.BlockConcurrencyWhile(func() error {
			_, err := st.Storage().Exec(`CREATE TABLE IF NOT EXISTS fired (at INTEGER, scheduled INTEGER, node TEXT, retry INTEGER)`)
			return err
		})
		return &tick{st: st, node: rt.NodeName()}, err
	})
}

func (k *tick) Fetch(w http.ResponseWriter, r *http.Request) error {
	s := k.st.Storage()
	switch r.URL.Path {
	case "/arm":
		ms, err := strconv.ParseInt(r.URL.Query().Get("at"), 10, 64)
		if err != nil {
			return fmt.Errorf("%w: at", node.ErrBadRequest)
		}
		return s.SetAlarm(time.UnixMilli(ms))
	case "/disarm":
		return s.DeleteAlarm()
	case "/fail":
		return s.PutJSON("fail", r.URL.Query().Get("n"))
	}
	c, err := s.Exec("SELECT at, scheduled, node, retry FROM fired ORDER BY rowid")
	if err != nil {
		return err
	}
	return json.NewEncoder(w).Encode(c.Raw())
}

func (k *tick) Alarm(ctx context.Context, info node.AlarmInfo) error {
	s := k.st.Storage()
	var fail string
	s.GetJSON("fail", &fail)
	if n, _ := strconv.Atoi(fail); n > 0 {
		return fmt.Errorf("planned failure (%d)", n)
	}
	_, err := s.Exec("INSERT INTO fired VALUES (?, ?, ?, ?)", time.Now().UnixMilli(), info.ScheduledTime.UnixMilli(), k.node, info.RetryCount)
	return err
}

type run struct {
	at, scheduled int64
	node          string
	retry         int64
}

// runs reads an object's recorded alarm runs through any running node.
func runs(t *testing.T, c *Cluster, name string) ([]run, error) {
	t.Helper()
	resp, err := c.Up()[0].Client.Call(context.Background(), "GET", "tick", name, "/", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var rows [][]any
	if err := json.Unmarshal(b, &rows); err != nil {
		return nil, err
	}
	var out []run
	for _, r := range rows {
		out = append(out, run{int64(r[0].(float64)), int64(r[1].(float64)), r[2].(string), int64(r[3].(float64))})
	}
	return out, nil
}

func arm(t *testing.T, c *Cluster, via int, name string, at time.Time) {
	t.Helper()
	resp, err := c.Nodes[via].Client.Call(context.Background(), "POST", "tick", name, "/arm?at="+strconv.FormatInt(at.UnixMilli(), 10), nil)
	if err != nil {
		t.Fatalf("arm %s: %v", name, err)
	}
	resp.Body.Close()
}

// waitFired waits until every object ran its alarm, and checks that no
// run came before its time and, when exact, that each ran once.
func waitFired(t *testing.T, c *Cluster, names []string, at time.Time, exact bool) map[string][]run {
	t.Helper()
	out := map[string][]run{}
	testutil.Poll(t, 60*time.Second, "every alarm fired", func() string {
		for _, name := range names {
			if _, ok := out[name]; ok {
				continue
			}
			rs, err := runs(t, c, name)
			if err != nil || len(rs) == 0 {
				return fmt.Sprintf("%s has not fired (error %v)", name, err)
			}
			out[name] = rs
		}
		return ""
	})
	for name, rs := range out {
		for _, r := range rs {
			if r.at < at.UnixMilli() {
				t.Fatalf("%s fired at %d, before its time %d", name, r.at, at.UnixMilli())
			}
		}
		if exact && len(rs) != 1 {
			t.Fatalf("%s fired %d times: %+v", name, len(rs), rs)
		}
	}
	return out
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(prefix, i)
	}
	return out
}

func TestAlarmsSurviveLeaderLossAndFireAfterRestart(t *testing.T) {
	c := New(t, 3, registerTick)
	c.WaitConverged(30 * time.Second)
	objs := names("lead", 20)
	at := time.Now().Add(1500 * time.Millisecond)
	for i, n := range objs {
		arm(t, c, i%3, n, at)
	}
	leader := -1
	for i, nd := range c.Nodes {
		if nd == c.Leader() {
			leader = i
		}
	}
	c.Kill(leader)
	// Objects the dead leader owned wait for it; the others fire now.
	time.Sleep(time.Until(at))
	c.Restart(leader)
	c.WaitConverged(60 * time.Second)
	waitFired(t, c, objs, at, false)
}

func TestAlarmsMoveWithTheirPartitionToAJoiningNode(t *testing.T) {
	c := New(t, 3, registerTick)
	c.WaitConverged(30 * time.Second)
	objs := names("move", 40)
	at := time.Now().Add(2 * time.Second)
	for i, n := range objs {
		arm(t, c, i%3, n, at)
	}
	c.Join()
	c.WaitConverged(60 * time.Second)
	fired := waitFired(t, c, objs, at, true)
	onNew := 0
	for _, rs := range fired {
		if rs[0].node == "n4" {
			onNew++
		}
	}
	if onNew == 0 {
		t.Fatal("no alarm fired on the node that took partitions over")
	}
}

func TestAlarmsSurviveWholeClusterRestartAndFireOnce(t *testing.T) {
	c := New(t, 3, registerTick)
	c.WaitConverged(30 * time.Second)
	objs := names("all", 15)
	at := time.Now().Add(time.Second)
	for i, n := range objs {
		arm(t, c, i%3, n, at)
	}
	for i := range c.Nodes {
		c.Kill(i)
	}
	time.Sleep(time.Until(at.Add(time.Second))) // overdue while everything is down
	for i := range c.Nodes {
		c.Restart(i)
	}
	c.WaitConverged(60 * time.Second)
	waitFired(t, c, objs, at, true)
}

func TestDeletedAndPastAlarms(t *testing.T) {
	c := New(t, 3, registerTick)
	c.WaitConverged(30 * time.Second)
	arm(t, c, 0, "past", time.Now().Add(-time.Hour))
	waitFired(t, c, []string{"past"}, time.Now().Add(-time.Hour), true)
	arm(t, c, 1, "gone", time.Now().Add(800*time.Millisecond))
	resp, err := c.Nodes[2].Client.Call(context.Background(), "POST", "tick", "gone", "/disarm", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	arm(t, c, 1, "kept", time.Now().Add(1200*time.Millisecond))
	waitFired(t, c, []string{"kept"}, time.Now(), true)
	if rs, _ := runs(t, c, "gone"); len(rs) != 0 {
		t.Fatalf("deleted alarm fired: %+v", rs)
	}
}

func TestRetryCountSurvivesOwnerRestart(t *testing.T) {
	c := New(t, 3, registerTick)
	c.WaitConverged(30 * time.Second)
	name := "retry"
	post := func(path string) {
		resp, err := c.Nodes[0].Client.Call(context.Background(), "POST", "tick", name, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	post("/fail?n=1")
	arm(t, c, 0, name, time.Now())
	// The first run fails and is rescheduled 2 s later with RetryCount 1,
	// kept in the replicated schedule.
	testutil.Poll(t, 10*time.Second, "the failed run rescheduled with RetryCount 1", func() string {
		if got, ok := alarmRetry(c, name); !ok || got != 1 {
			return fmt.Sprintf("retry %d, alarm present %v", got, ok)
		}
		return ""
	})
	post("/fail?n=0")
	owner := ownerOf(t, c, name)
	for i, nd := range c.Nodes {
		if nd.Name == owner {
			c.Kill(i)
			c.Restart(i)
		}
	}
	c.WaitConverged(60 * time.Second)
	fired := waitFired(t, c, []string{name}, time.Time{}, true)
	if fired[name][0].retry != 1 {
		t.Fatalf("retry count lost across the restart: %+v", fired[name])
	}
}

// alarmRetry reads the replicated retry count of an object's alarm.
func alarmRetry(c *Cluster, name string) (int, bool) {
	for _, a := range c.Up()[0].Cluster.Alarms() {
		if a.Class == "tick" && a.Name == name {
			return a.Retry, true
		}
	}
	return 0, false
}

func ownerOf(t *testing.T, c *Cluster, name string) string {
	t.Helper()
	resp, err := c.Up()[0].Client.Call(context.Background(), "GET", "tick", name, "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get("X-Dura-Node")
}

func TestAlarmListIsClusterWide(t *testing.T) {
	c := New(t, 3, registerTick)
	c.WaitConverged(30 * time.Second)
	at := time.Now().Add(time.Hour)
	for i, n := range names("listed", 12) {
		arm(t, c, i%3, n, at.Add(time.Duration(i)*time.Second))
	}
	// Every node lists the whole schedule from its copy (followers may
	// trail the leader by a moment).
	for _, nd := range c.Nodes {
		testutil.Poll(t, 10*time.Second, nd.Name+" lists the whole schedule", func() string {
			list, err := nd.Client.ListAlarms(context.Background(), 0, "", 100)
			if err != nil || len(list.Alarms) != 12 || list.Alarms[0].Name != "listed0" {
				return fmt.Sprintf("%+v, %v", list, err)
			}
			return ""
		})
	}
}
