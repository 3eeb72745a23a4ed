package server

import (
	"context"

	"github.com/dura-dev/dura/cluster"
	"github.com/dura-dev/dura/jsrt"
	"github.com/dura-dev/dura/replication"
)

// clusterModules keeps deployed modules in the control-plane Raft state:
// a deploy commits through the leader, and every node installs it when
// its copy of the state applies it (Cluster's OnModules → Host.SyncLater).
type clusterModules struct{ cl *cluster.Cluster }

func (s *clusterModules) PutModule(ctx context.Context, r jsrt.Record) error {
	return s.cl.Apply(ctx, replication.Command{Kind: replication.CmdPutModule, Module: &replication.Module{
		Name: r.Name, Source: r.Source, JS: r.JS, Classes: r.Classes, DeployedAt: r.DeployedAt,
	}})
}

func (s *clusterModules) DeleteModule(ctx context.Context, name string) error {
	return s.cl.Apply(ctx, replication.Command{Kind: replication.CmdDeleteModule, Name: name})
}

// records are the committed modules as the JavaScript host takes them.
func records(ms []replication.Module) []jsrt.Record {
	out := make([]jsrt.Record, len(ms))
	for i, m := range ms {
		out[i] = jsrt.Record{Name: m.Name, Version: m.Version, Source: m.Source, JS: m.JS, Classes: m.Classes, DeployedAt: m.DeployedAt}
	}
	return out
}
