package server

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(secretFile, []byte("file-secret-0123456789\nold-secret-0123456789\n"), 0o600)
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		check func(Config) bool
		err   string // substring of a usage error
	}{
		{name: "defaults", check: func(c Config) bool {
			d := DefaultConfig()
			return c.Data == "./dura-data" && c.HTTP == "127.0.0.1:8080" && c.Gossip == "127.0.0.1:7946" &&
				c.Raft == "127.0.0.1:7947" && c.Name == d.Name && c.MaxObjectBytes == 1<<30 && c.IdleTimeout == 5*time.Minute &&
				c.ReleaseAfter == 10*time.Second
		}},
		{name: "release after", args: []string{"--release-after", "0"}, env: map[string]string{"DURA_RELEASE_AFTER": "1m"},
			check: func(c Config) bool { return c.ReleaseAfter == 0 }},
		{name: "release after from env", env: map[string]string{"DURA_RELEASE_AFTER": "1m"},
			check: func(c Config) bool { return c.ReleaseAfter == time.Minute }},
		{name: "env", env: map[string]string{"DURA_DATA": "/x", "DURA_BOOTSTRAP_EXPECT": "3", "DURA_IDLE_TIMEOUT": "1m"},
			check: func(c Config) bool { return c.Data == "/x" && c.BootstrapExpect == 3 && c.IdleTimeout == time.Minute }},
		{name: "args win over env", args: []string{"--data", "/y"}, env: map[string]string{"DURA_DATA": "/x"},
			check: func(c Config) bool { return c.Data == "/y" }},
		{name: "secret file", args: []string{"--secret-file", secretFile}, check: func(c Config) bool {
			return c.Secret == "file-secret-0123456789" && c.AcceptSecrets == "old-secret-0123456789," && c.SecretFile == ""
		}},
		{name: "bad env", env: map[string]string{"DURA_BOOTSTRAP_EXPECT": "three"}, err: "DURA_BOOTSTRAP_EXPECT"},
		{name: "unknown flag", args: []string{"--nosuch"}, err: "flag provided but not defined"},
		{name: "extra argument", args: []string{"more"}, err: "unexpected arguments"},
		{name: "open without secret", args: []string{"--http", "0.0.0.0:1"}, err: "--insecure"},
		{name: "every interface without advertise", args: []string{"--http", "0.0.0.0:1", "--insecure"}, err: "--advertise"},
		{name: "tls incomplete", args: []string{"--tls-cert", "c.pem"}, err: "go together"},
		{name: "accept without secret", args: []string{"--accept-secrets", "a"}, err: "needs --secret"},
		{name: "missing secret file", args: []string{"--secret-file", filepath.Join(dir, "none")}, err: "--secret-file"},
		{name: "bad log level", args: []string{"--log-level", "loud"}, err: "--log-level"},
		{name: "debug beyond loopback", args: []string{"--debug-addr", "10.0.0.1:6060"}, err: "loopback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			c, err := ParseFlags("dura serve [flags]", tc.args, func(k string) string { return tc.env[k] }, &out)
			if tc.err != "" {
				if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("want a usage error with %q, got %v", tc.err, err)
				}
				return
			}
			if err != nil || !tc.check(c) {
				t.Fatalf("err %v, config %+v", err, c)
			}
		})
	}
}

func TestParseFlagsHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := ParseFlags("mybinary [flags]", []string{"--help"}, func(string) string { return "" }, &out)
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "Usage: mybinary [flags]") || !strings.Contains(out.String(), "-bootstrap-expect") {
		t.Fatalf("err %v\n%s", err, out.String())
	}
}

func TestPartitionsFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
		err  string
	}{
		{nil, 0, ""},
		{[]string{"--partitions", "65521"}, 65521, ""},
		{[]string{"--partitions", "-1"}, 0, "--partitions"},
		{[]string{"--partitions", "2000000"}, 0, "--partitions"},
	} {
		c, err := ParseFlags("dura serve", tc.args, func(string) string { return "" }, io.Discard)
		if tc.err != "" {
			if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: %v", tc.args, err)
			}
			continue
		}
		if err != nil || c.Partitions != tc.want {
			t.Errorf("%v: %d, %v", tc.args, c.Partitions, err)
		}
	}
}

// TestDataPartitions: a data directory keeps the partition count it was
// created with, and a node started on it with another is refused.
func TestDataPartitions(t *testing.T) {
	fresh := t.TempDir()
	if n, err := dataPartitions(fresh, 0); err != nil || n != 271 {
		t.Fatalf("new directory, no flag: %d, %v", n, err)
	}
	big := t.TempDir()
	if n, err := dataPartitions(big, 65521); err != nil || n != 65521 {
		t.Fatalf("new directory, --partitions 65521: %d, %v", n, err)
	}
	if n, err := dataPartitions(big, 0); err != nil || n != 65521 {
		t.Fatalf("restart without the flag: %d, %v", n, err)
	}
	if n, err := dataPartitions(big, 65521); err != nil || n != 65521 {
		t.Fatalf("restart with the same flag: %d, %v", n, err)
	}
	_, err := dataPartitions(big, 271)
	if err == nil || !strings.Contains(err.Error(), "created with --partitions 65521, not 271") {
		t.Fatalf("restart with another count: %v", err)
	}
	// A data directory of an earlier version ran with 271.
	old := t.TempDir()
	os.MkdirAll(filepath.Join(old, "raft"), 0o755)
	if _, err := dataPartitions(old, 65521); err == nil {
		t.Fatal("an existing 271-partition directory accepted --partitions 65521")
	}
	if n, err := dataPartitions(old, 0); err != nil || n != 271 {
		t.Fatalf("existing directory without a record: %d, %v", n, err)
	}
	if b, _ := os.ReadFile(filepath.Join(old, partitionsFile)); strings.TrimSpace(string(b)) != "271" {
		t.Fatalf("recorded %q", b)
	}
}
