package examples

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/dura-dev/dura/node"
)

// remindersMigrations: version 1 keeps the one pending reminder of an
// object and a log of every delivery the receiver accepted (objects made
// before migrations were used have it already, hence IF NOT EXISTS);
// version 2 logs when each run started, so a delivery's row spans the
// run from its start to the receiver's answer (delivered_at); version 3
// adds the delivery status: "pending" until the alarm's last retry fails,
// then "failed" with the last error, so a reminder that was given up on
// stays visible instead of looking pending.
var remindersMigrations = []node.Migration{
	{Version: 1, Up: func(s *node.Storage) error {
		_, err := s.Exec(remindersSchema)
		return err
	}},
	{Version: 2, Up: func(s *node.Storage) error {
		_, err := s.Exec(`ALTER TABLE deliveries ADD COLUMN started INTEGER NOT NULL DEFAULT 0`)
		return err
	}},
	{Version: 3, Up: func(s *node.Storage) error {
		_, err := s.Exec(`ALTER TABLE reminder ADD COLUMN status TEXT NOT NULL DEFAULT 'pending';
			ALTER TABLE reminder ADD COLUMN error TEXT`)
		return err
	}},
}

const remindersSchema = `
CREATE TABLE IF NOT EXISTS reminder (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	at INTEGER NOT NULL,
	url TEXT NOT NULL,
	payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
	seq INTEGER PRIMARY KEY AUTOINCREMENT,
	at INTEGER NOT NULL,
	delivered_at INTEGER NOT NULL,
	retry INTEGER NOT NULL
)`

// reminderWebhookTimeout bounds one delivery; a slow receiver counts as a
// failure and the alarm retries.
const reminderWebhookTimeout = 5 * time.Second

// Reminders is a webhook reminder per object, the alarm pattern at its
// plainest: set a time and a URL; at that time the object POSTs to the
// URL, and retries (the alarm's backoff, node.MaxRetries times: about two
// minutes) until the receiver answers 2xx. Delivery is at least once: a
// receiver must tolerate repeats. When the last retry fails too, the
// reminder stays, with "status":"failed" and the last "error", until it
// is set again or deleted.
//
//	PUT    /  {"at": unix_ms, "url": "http://...", "payload": any} -> {"at"}
//	GET    /  -> {"reminder": {...,"status":"pending"|"failed"[,"error"]} or null, "deliveries": n, "runs": [...]}
//	DELETE /  -> cancels the pending reminder
//
// The POST body is {"object","at","started","node","retry","payload"},
// times in unix ms; started is when the alarm run began, before the POST.
// Each accepted delivery is logged as a run {"at","started","answered",
// "retry"} (newest first in GET, at most 100): it spans the run from its
// start to the receiver's answer, so two runs of one reminder on two
// nodes at once show as overlapping runs.
// Anyone who may call the class may make the node POST anywhere: keep the
// class behind an API token on a shared cluster.
type Reminders struct {
	st     *node.State
	client *http.Client
}

// NewReminders is the constructor of class "reminders".
func NewReminders(st *node.State) (node.Object, error) {
	err := st.BlockConcurrencyWhile(func() error {
		return st.Storage().Migrate(remindersMigrations...)
	})
	if err != nil {
		return nil, fmt.Errorf("reminders schema: %w", err)
	}
	return &Reminders{st: st, client: &http.Client{Timeout: reminderWebhookTimeout}}, nil
}

type reminder struct {
	At      int64           `json:"at"`
	URL     string          `json:"url"`
	Payload json.RawMessage `json:"payload,omitempty"`
	Status  string          `json:"status,omitempty"` // pending or failed
	Error   string          `json:"error,omitempty"`  // the last failure, once failed
}

func (rm *Reminders) Fetch(w http.ResponseWriter, r *http.Request) error {
	if r.URL.Path != "/" {
		return noRoute(r)
	}
	switch r.Method {
	case http.MethodPut:
		return rm.set(w, r)
	case http.MethodGet:
		return rm.get(w)
	case http.MethodDelete:
		if _, err := rm.st.Storage().Exec(`DELETE FROM reminder`); err != nil {
			return err
		}
		if err := rm.st.Storage().DeleteAlarm(); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, map[string]bool{"deleted": true})
	}
	return noRoute(r)
}

func (rm *Reminders) set(w http.ResponseWriter, r *http.Request) error {
	var in reminder
	if err := readJSON(r, &in); err != nil {
		return err
	}
	if in.At <= 0 {
		return missing("at")
	}
	u, err := url.Parse(in.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: url must be an absolute http(s) URL", node.ErrBadRequest)
	}
	if len(in.Payload) == 0 {
		in.Payload = json.RawMessage("null")
	}
	_, err = rm.st.Storage().Exec(`INSERT OR REPLACE INTO reminder (id, at, url, payload) VALUES (1, ?, ?, ?)`, in.At, in.URL, string(in.Payload))
	if err != nil {
		return err
	}
	if err := rm.st.Storage().SetAlarm(time.UnixMilli(in.At)); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]int64{"at": in.At})
}

// reminderRun is one accepted delivery: the alarm run's start and the
// receiver's answer, unix ms.
type reminderRun struct {
	At       int64 `json:"at"`
	Started  int64 `json:"started"`
	Answered int64 `json:"answered"`
	Retry    int   `json:"retry"`
}

func (rm *Reminders) get(w http.ResponseWriter) error {
	var out struct {
		Reminder   *reminder     `json:"reminder"`
		Deliveries int64         `json:"deliveries"`
		Runs       []reminderRun `json:"runs"`
	}
	cur, err := rm.st.Storage().Exec(`SELECT at, url, payload, status, coalesce(error, '') FROM reminder`)
	if err != nil {
		return err
	}
	if cur.Next() {
		var rem reminder
		var payload string
		if err := cur.Scan(&rem.At, &rem.URL, &payload, &rem.Status, &rem.Error); err != nil {
			return err
		}
		rem.Payload = json.RawMessage(payload)
		out.Reminder = &rem
	}
	cur, err = rm.st.Storage().Exec(`SELECT count(*) FROM deliveries`)
	if err != nil {
		return err
	}
	if err := cur.ScanOne(&out.Deliveries); err != nil {
		return err
	}
	cur, err = rm.st.Storage().Exec(`SELECT at, started, delivered_at, retry FROM deliveries ORDER BY seq DESC LIMIT 100`)
	if err != nil {
		return err
	}
	out.Runs = make([]reminderRun, 0, cur.Len())
	for cur.Next() {
		var run reminderRun
		if err := cur.Scan(&run.At, &run.Started, &run.Answered, &run.Retry); err != nil {
			return err
		}
		out.Runs = append(out.Runs, run)
	}
	return writeJSON(w, http.StatusOK, out)
}

// Alarm delivers the pending reminder. An error leaves the reminder in
// place and the runtime retries with backoff; the last retry records the
// failure instead (an error would roll that record back).
func (rm *Reminders) Alarm(ctx context.Context, info node.AlarmInfo) error {
	started := rm.st.Now()
	cur, err := rm.st.Storage().Exec(`SELECT at, url, payload FROM reminder`)
	if err != nil {
		return err
	}
	if !cur.Next() {
		return nil // cancelled
	}
	var rem reminder
	var payload string
	if err := cur.Scan(&rem.At, &rem.URL, &payload); err != nil {
		return err
	}
	body, err := json.Marshal(map[string]any{
		"object": rm.st.Name(), "at": rem.At, "started": started.UnixMilli(),
		"node": rm.st.NodeName(), "retry": info.RetryCount, "payload": json.RawMessage(payload),
	})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rem.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := rm.post(req); err != nil {
		if info.RetryCount < node.MaxRetries {
			return err
		}
		_, err = rm.st.Storage().Exec(`UPDATE reminder SET status = 'failed', error = ?`, err.Error())
		return err
	}
	if _, err := rm.st.Storage().Exec(`DELETE FROM reminder`); err != nil {
		return err
	}
	answered := rm.st.Now()
	_, err = rm.st.Storage().Exec(`INSERT INTO deliveries (at, started, delivered_at, retry) VALUES (?, ?, ?, ?)`, rem.At, started.UnixMilli(), answered.UnixMilli(), info.RetryCount)
	return err
}

// post sends the webhook; anything but a 2xx answer is an error.
func (rm *Reminders) post(req *http.Request) error {
	resp, err := rm.client.Do(req)
	if err != nil {
		return fmt.Errorf("reminder webhook: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("reminder webhook answered %d", resp.StatusCode)
	}
	return nil
}
