package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dura-dev/dura/internal/fsutil"

	"github.com/dura-dev/dura/rpc"
)

func init() {
	commands["backup"] = command{summary: "copy every object and alarm of a cluster to a directory, or load one into an empty cluster", run: runBackup}
}

const backupSynopsis = `backup [flags] DIR
backup --restore [flags] DIR

Writes a consistent copy of every object of the cluster (each as of one
of its commits), its alarms and the cluster's ring parameters to DIR, with
a manifest (manifest.json) holding each file's size and SHA-256. DIR must
be empty or not exist. With --restore, checks every file of DIR against
its manifest, then loads the objects and alarms into the cluster, which
must hold no object.`

// backupManifest describes a backup directory.
type backupManifest struct {
	Format  int              `json:"format"`
	Created time.Time        `json:"created"`
	Cluster backupRing       `json:"cluster"`
	Objects []backupObject   `json:"objects"`
	Alarms  []rpc.AlarmEntry `json:"alarms"`
}

type backupRing struct {
	Partitions        int `json:"partitions"`
	ReplicationFactor int `json:"replication_factor"`
	Members           int `json:"members"`
}

type backupObject struct {
	Class  string `json:"class"`
	Name   string `json:"name"`
	File   string `json:"file"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

const manifestName = "manifest.json"

func runBackup(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "backup", backupSynopsis)
	co := addClientFlagsTimeout(fs, 0)
	load := fs.Bool("restore", false, "load the backup in DIR into an empty cluster")
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("want DIR, got %d arguments", len(pos))
	}
	if *load {
		return loadBackup(ctx, env, co, pos[0])
	}
	return writeBackup(ctx, env, co, pos[0])
}

// writeBackup copies every object and alarm into dir.
func writeBackup(ctx context.Context, env *cliEnv, co *clientOpts, dir string) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return usageErr("%s is not empty: a backup goes into a new directory", dir)
	}
	if err := os.MkdirAll(filepath.Join(dir, "objects"), 0o755); err != nil {
		return err
	}
	c := co.client()
	info, err := c.Cluster(ctx)
	if err != nil {
		return co.clientErr(err)
	}
	m := backupManifest{Format: 1, Created: time.Now().UTC(), Cluster: backupRing{
		Partitions: info.Partitions, ReplicationFactor: info.ReplicationFactor, Members: len(info.Members)}}
	cursor := ""
	seen := map[string]bool{}
	for {
		page, err := c.ListObjects(ctx, "", cursor, 1000)
		if err != nil {
			return co.clientErr(err)
		}
		if len(page.Unavailable) > 0 {
			return fmt.Errorf("members %s could not be asked for their objects: a backup now would miss them", strings.Join(page.Unavailable, ", "))
		}
		for _, o := range page.Objects {
			if seen[o.ID] {
				continue // listed by two members (a copy and its owner)
			}
			seen[o.ID] = true
			obj, err := backupOne(ctx, c, dir, o)
			if err != nil {
				return co.clientErr(fmt.Errorf("%s/%s: %w", o.Class, o.Name, err))
			}
			m.Objects = append(m.Objects, obj)
		}
		if cursor = page.Cursor; cursor == "" {
			break
		}
	}
	for cursor = ""; ; {
		page, err := c.ListAlarms(ctx, 0, cursor, 1000)
		if err != nil {
			return co.clientErr(err)
		}
		m.Alarms = append(m.Alarms, page.Alarms...)
		if cursor = page.Cursor; cursor == "" {
			break
		}
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, manifestName), b, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "backed up %d objects and %d alarms to %s\n", len(m.Objects), len(m.Alarms), dir)
	return nil
}

// backupOne exports one object into dir/objects and describes the file.
func backupOne(ctx context.Context, c *rpc.Client, dir string, o rpc.ObjectInfo) (backupObject, error) {
	rel := filepath.Join("objects", o.ID+".db")
	f, err := os.Create(filepath.Join(dir, rel))
	if err != nil {
		return backupObject{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := c.Export(ctx, o.Class, o.Name, io.MultiWriter(f, h))
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return backupObject{}, err
	}
	return backupObject{Class: o.Class, Name: o.Name, File: rel, Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// loadBackup checks dir against its manifest, then loads it into an
// empty cluster.
func loadBackup(ctx context.Context, env *cliEnv, co *clientOpts, dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return fmt.Errorf("%s has no backup manifest: %w", dir, err)
	}
	var m backupManifest
	if err := json.Unmarshal(b, &m); err != nil || m.Format != 1 {
		return fmt.Errorf("%s: not a backup manifest of format 1 (%v)", filepath.Join(dir, manifestName), err)
	}
	for _, o := range m.Objects {
		if err := checkBackupFile(dir, o); err != nil {
			return fmt.Errorf("nothing loaded: %w", err)
		}
	}
	c := co.client()
	page, err := c.ListObjects(ctx, "", "", 1)
	if err != nil {
		return co.clientErr(err)
	}
	if len(page.Objects) > 0 || len(page.Unavailable) > 0 {
		return errors.New("nothing loaded: the cluster is not empty (or a member cannot say): a backup loads into a cluster with no object")
	}
	if info, err := c.Cluster(ctx); err == nil && info.Partitions != m.Cluster.Partitions {
		fmt.Fprintf(env.stderr, "note: the backup's cluster had %d partitions, this one has %d: objects are placed by this cluster's ring\n", m.Cluster.Partitions, info.Partitions)
	}
	for i, o := range m.Objects {
		f, err := os.Open(filepath.Join(dir, o.File))
		if err != nil {
			return err
		}
		err = c.Import(ctx, o.Class, o.Name, f)
		f.Close()
		if err != nil {
			return co.clientErr(fmt.Errorf("%s/%s (%d of %d objects loaded before it): %w", o.Class, o.Name, i, len(m.Objects), err))
		}
	}
	for _, a := range m.Alarms {
		if err := c.SetAlarm(ctx, a.Class, a.Name, a.Scheduled); err != nil {
			return co.clientErr(fmt.Errorf("alarm of %s/%s: %w", a.Class, a.Name, err))
		}
	}
	fmt.Fprintf(env.stdout, "loaded %d objects and %d alarms from %s\n", len(m.Objects), len(m.Alarms), dir)
	return nil
}

// checkBackupFile compares one object's file with its manifest entry.
func checkBackupFile(dir string, o backupObject) error {
	if filepath.IsAbs(o.File) || strings.Contains(o.File, "..") {
		return fmt.Errorf("manifest names %q, outside the backup", o.File)
	}
	f, err := os.Open(filepath.Join(dir, o.File))
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	if n != o.Bytes || hex.EncodeToString(h.Sum(nil)) != o.SHA256 {
		return fmt.Errorf("%s (%s/%s) does not match its manifest: %d bytes, checksum differs or size does (want %d bytes)", o.File, o.Class, o.Name, n, o.Bytes)
	}
	return nil
}
