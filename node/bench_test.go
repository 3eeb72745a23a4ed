package node_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/dura-dev/dura/examples"
	"github.com/dura-dev/dura/node"
)

// BenchmarkCounterEvent measures one counter increment as a full event
// (activation cached, transaction, commit with fsync) without HTTP, from
// 16 goroutines over 64 objects; BenchmarkRawCommit is the same commit
// straight on go-sqlite3. Compare them in one run:
//
//	go test -run '^$' -bench 'CounterEvent|RawCommit' ./node
func BenchmarkCounterEvent(b *testing.B) {
	cfg := node.DefaultConfig(b.TempDir())
	rt, err := node.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	examples.RegisterAll(rt)
	rt.Start(context.Background())
	defer rt.Close(context.Background())
	b.SetParallelism(8) // 16 goroutines on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rnd := rand.New(rand.NewPCG(rand.Uint64(), 1))
		for pb.Next() {
			req := httptest.NewRequest("POST", "/increment", nil)
			rec := httptest.NewRecorder()
			if err := rt.Call(context.Background(), "counter", fmt.Sprint("c", rnd.IntN(64)), rec, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkRawCommit(b *testing.B) {
	dir := b.TempDir()
	dbs := make([]*sql.DB, 64)
	locks := make([]sync.Mutex, 64)
	for i := range dbs {
		db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, fmt.Sprint(i, ".db"))+"?_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1")
		if err != nil {
			b.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		db.Exec(`CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL);
			CREATE INDEX idx_counters_updated ON counters(updated_at DESC)`)
		dbs[i] = db
		defer db.Close()
	}
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rnd := rand.New(rand.NewPCG(rand.Uint64(), 2))
		for pb.Next() {
			i := rnd.IntN(64)
			locks[i].Lock()
			tx, _ := dbs[i].Begin()
			var v int64
			if err := tx.QueryRow(`INSERT INTO counters (name, value, updated_at) VALUES ('default', 1, ?)
				ON CONFLICT(name) DO UPDATE SET value = value + 1, updated_at = excluded.updated_at RETURNING value`, time.Now().UnixMilli()).Scan(&v); err != nil {
				b.Fatal(err)
			}
			tx.Commit()
			locks[i].Unlock()
		}
	})
}

// BenchmarkColdActivation measures the first event of a fresh counter
// object (open, constructor with its schema, first write), without HTTP;
// BenchmarkRawCold is the same work straight on go-sqlite3 (open with the
// same pragmas, schema, one write) minus Dura's catalog and sandbox:
//
//	go test -run '^$' -bench 'ColdActivation|RawCold' ./node
func BenchmarkColdActivation(b *testing.B) {
	cfg := node.DefaultConfig(b.TempDir())
	rt, err := node.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	examples.RegisterAll(rt)
	rt.Start(context.Background())
	defer rt.Close(context.Background())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest("POST", "/increment", nil)
		rec := httptest.NewRecorder()
		if err := rt.Call(context.Background(), "counter", fmt.Sprint("cold", i), rec, req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawCold(b *testing.B) {
	dir := b.TempDir()
	var dbs []*sql.DB
	defer func() {
		for _, db := range dbs {
			db.Close()
		}
	}()
	for i := 0; i < b.N; i++ {
		db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, fmt.Sprint(i, ".db"))+"?_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1")
		if err != nil {
			b.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		dbs = append(dbs, db) // kept open, as Dura keeps active objects open
		tx, _ := db.Begin()
		tx.Exec(`CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL);
			CREATE INDEX idx_counters_updated ON counters(updated_at DESC)`)
		tx.Commit()
		tx, _ = db.Begin()
		var v int64
		if err := tx.QueryRow(`INSERT INTO counters (name, value, updated_at) VALUES ('default', 1, ?)
			ON CONFLICT(name) DO UPDATE SET value = value + 1, updated_at = excluded.updated_at RETURNING value`, time.Now().UnixMilli()).Scan(&v); err != nil {
			b.Fatal(err)
		}
		tx.Commit()
	}
}
