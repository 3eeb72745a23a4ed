package cluster

import "github.com/prometheus/client_golang/prometheus"

// metrics are the cluster's replication metrics.
type metrics struct {
	shrinks prometheus.Counter
	expands prometheus.Counter
}

var (
	lagRecords = prometheus.NewDesc("dura_replication_lag_records", "Records shipped to a replica and not yet acknowledged, by replica.", []string{"peer"}, nil)
	lagSeconds = prometheus.NewDesc("dura_replication_lag_seconds", "How long the oldest record not yet acknowledged by a replica has waited, by replica.", []string{"peer"}, nil)
)

func newMetrics(reg prometheus.Registerer, c *Cluster) *metrics {
	m := &metrics{
		shrinks: prometheus.NewCounter(prometheus.CounterOpts{Name: "dura_insync_shrinks_total", Help: "Replicas this node, as a primary, took out of a partition's in-sync set for not acknowledging in time."}),
		expands: prometheus.NewCounter(prometheus.CounterOpts{Name: "dura_insync_expands_total", Help: "Partitions this node, as a replica, was seeded for and entered the in-sync set of."}),
	}
	if reg != nil {
		reg.MustRegister(m.shrinks, m.expands, lagCollector{c},
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dura_under_replicated_partitions", Help: "Partitions with fewer in-sync replicas than the replication factor allows, as this node's state says."},
				func() float64 {
					if st := c.state.Load(); st != nil {
						return float64(st.UnderReplicated())
					}
					return 0
				}))
	}
	return m
}

// lagCollector reports the shipper's lag per replica at each scrape.
type lagCollector struct{ c *Cluster }

func (lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lagRecords
	ch <- lagSeconds
}

func (l lagCollector) Collect(ch chan<- prometheus.Metric) {
	if l.c.ship == nil {
		return
	}
	for peer, lag := range l.c.ship.Lag() {
		ch <- prometheus.MustNewConstMetric(lagRecords, prometheus.GaugeValue, float64(lag.Records), peer)
		ch <- prometheus.MustNewConstMetric(lagSeconds, prometheus.GaugeValue, lag.Oldest.Seconds(), peer)
	}
}
