package main

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestE2EJSONLogs runs "dura serve --log-format json --log-level debug"
// and reads back everything it wrote to stderr: each line is one JSON
// record, Raft's lines carry their level and fields as attributes (no
// pre-formatted text with a timestamp of its own), and Raft's DEBUG lines
// follow --log-level.
func TestE2EJSONLogs(t *testing.T) {
	n := e2eStart(t, t.TempDir(), "--log-format", "json", "--log-level", "debug")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := increment(ctx, n.client(), "logs"); err != nil {
		t.Fatalf("increment: %v\n%s", err, n.Log())
	}
	n.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-n.Done:
		if err != nil {
			t.Fatalf("serve exited badly: %v\n%s", err, n.Log())
		}
	case <-time.After(40 * time.Second):
		t.Fatal("serve did not stop after SIGTERM")
	}

	var raftFields, raftDebug, banner, shutdown bool
	for line := range strings.Lines(n.Log()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("not one JSON object: %q: %v", line, err)
			continue
		}
		level, _ := m["level"].(string)
		msg, ok := m["msg"].(string)
		if level == "" || !ok {
			t.Errorf("no level or msg: %q", line)
			continue
		}
		if msg != "" && (msg[0] >= '0' && msg[0] <= '9' || strings.HasPrefix(msg, "[")) {
			t.Errorf("msg looks pre-formatted (timestamp or level inside): %q", line)
		}
		banner = banner || strings.Contains(msg, "serving on http://")
		if msg == "shutting down" {
			_, shutdown = m["timeout"].(string) // a duration as "30s", not nanoseconds
		}
		if m["component"] != "raft" {
			continue
		}
		raftDebug = raftDebug || level == "DEBUG"
		for k := range m {
			switch k {
			case "time", "level", "msg", "node", "component":
			default:
				raftFields = true
			}
		}
	}
	for what, ok := range map[string]bool{
		"a Raft line with its fields as keys":          raftFields,
		"a Raft DEBUG line":                            raftDebug,
		"the banner as a JSON record":                  banner,
		`"shutting down" with its timeout as a string`: shutdown,
	} {
		if !ok {
			t.Errorf("no %s in the logs:\n%s", what, n.Log())
		}
	}
}
