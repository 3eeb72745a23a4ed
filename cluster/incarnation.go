package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/internal/fsutil"
	"github.com/dura-dev/dura/replication"
)

// incarnationFile names the data directory's identity, created with it.
// A node that comes back with another one lost its disk: the cluster's
// record of what it owns no longer matches what is on it.
const incarnationFile = "incarnation"

// loadIncarnation reads the data directory's identity, creating one (and
// the directory) the first time.
func loadIncarnation(dir string) (string, error) {
	path := filepath.Join(dir, incarnationFile)
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if id == "" {
			return "", fmt.Errorf("data directory identity %s is empty; restore it or move the data directory aside", path)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read data directory identity: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	var raw [16]byte
	rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	err = fsutil.WriteFileAtomic(path, []byte(id+"\n"), 0o600)
	if err != nil {
		return "", fmt.Errorf("create data directory identity: %w", err)
	}
	return id, nil
}

// dataMissing refuses to serve when this node is not the data directory
// the cluster's state relies on: it came back with an empty or other
// directory (the state then marks it DataLost once its join is
// committed; until then its own comparison says so).
func (c *Cluster) dataMissing(st *replication.ClusterState) error {
	m := st.Members[c.cfg.Name]
	if m == nil || !m.DataLost && (m.Incarnation == "" || m.Incarnation == c.incarnation) {
		return nil
	}
	if c.lostLogged.CompareAndSwap(false, true) {
		c.log.Error("this node's data directory is not the one the cluster recorded (a wiped or replaced disk): it serves none of its partitions",
			"node", c.cfg.Name, "recorded_incarnation", m.Incarnation, "local_incarnation", c.incarnation,
			"fix", "restart it with its original data directory, or run 'dura node remove --force "+c.cfg.Name+"' from another node (its data is then lost)")
	}
	return dataLostErr(c.cfg.Name, -1)
}

// dataLostErr is the refusal for a partition whose data is missing on its
// owner.
func dataLostErr(node string, p int) error {
	what := "the partition's data"
	if p >= 0 {
		what = fmt.Sprintf("partition %d's data", p)
	}
	return fmt.Errorf("%w: %s is missing on node %s (it came back with an empty or different data directory); restart it with its original data directory, or remove it with 'dura node remove --force %s'",
		apierr.ErrDataMissing, what, node, node)
}
