package node

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	activeObjects     prometheus.Gauge
	openDatabases     prometheus.Gauge
	storageBytes      prometheus.Gauge
	alarmsScheduled   prometheus.Gauge
	openFilesLimit    prometheus.Gauge
	activations       prometheus.Counter
	evictions         prometheus.Counter
	releases          prometheus.Counter
	parks             prometheus.Counter
	alarmsFired       prometheus.Counter
	alarmsRetried     prometheus.Counter
	activationSeconds prometheus.Histogram
	alarmLag          prometheus.Histogram
	adviceFindings    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, rt *Runtime) *metrics {
	m := &metrics{
		activeObjects:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "dura_active_objects", Help: "Live objects on this node (database open or parked)."}),
		openDatabases:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "dura_open_databases", Help: "Object databases open on this node."}),
		storageBytes:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "dura_storage_bytes", Help: "Bytes of object database files on this node (sampled every minute)."}),
		alarmsScheduled: prometheus.NewGauge(prometheus.GaugeOpts{Name: "dura_alarms_scheduled", Help: "Alarms armed on this node."}),
		openFilesLimit:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "dura_open_files_limit", Help: "The cap on files held by open object databases (--max-open-files)."}),
		activations:     prometheus.NewCounter(prometheus.CounterOpts{Name: "dura_activations_total", Help: "Object activations."}),
		evictions:       prometheus.NewCounter(prometheus.CounterOpts{Name: "dura_evictions_total", Help: "Objects closed and forgotten (in-memory state lost) for idleness or the live-objects cap."}),
		releases:        prometheus.NewCounter(prometheus.CounterOpts{Name: "dura_idle_releases_total", Help: "Idle objects that gave back their SQLite statements and page cache (--release-after)."}),
		parks:           prometheus.NewCounter(prometheus.CounterOpts{Name: "dura_parks_total", Help: "Live objects whose database was closed to stay under the open-files cap (reopened by their next event)."}),
		alarmsFired:     prometheus.NewCounter(prometheus.CounterOpts{Name: "dura_alarms_fired_total", Help: "Alarm handler runs, successful or not."}),
		alarmsRetried:   prometheus.NewCounter(prometheus.CounterOpts{Name: "dura_alarms_retried_total", Help: "Alarm runs that failed and were rescheduled."}),
		activationSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "dura_activation_seconds", Help: "Time to open an object and run its constructor.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14)}),
		alarmLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "dura_alarm_lag_seconds", Help: "Delay between an alarm's time and its handler start.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		adviceFindings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dura_advice_findings_total",
			Help: "Findings of the data-modelling advisor, counted each time advice is computed, by class and rule."}, []string{"class", "rule"}),
	}
	if reg != nil {
		reg.MustRegister(m.activeObjects, m.openFilesLimit, m.openDatabases, m.storageBytes, m.alarmsScheduled, m.activations,
			m.evictions, m.releases, m.parks, m.alarmsFired, m.alarmsRetried, m.activationSeconds, m.alarmLag, m.adviceFindings,
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dura_node_log_appends_total", Help: "Records appended to the node log."},
				func() float64 { return float64(rt.logStats().Appends) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "dura_node_log_syncs_total", Help: "Group commits (fdatasync) of the node log."},
				func() float64 { return float64(rt.logStats().Syncs) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dura_statement_stats_bytes", Help: "Memory charged to the advisor's statement statistics of the open objects (bounded by the runtime's budget)."},
				func() float64 {
					if rt.statsBudget == nil {
						return 0
					}
					return float64(rt.statsBudget.Used())
				}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dura_history_bytes", Help: "Bytes of point-in-time recovery history (snapshots and records) this node keeps."},
				func() float64 { return float64(rt.historyStats().Bytes) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dura_history_oldest_restorable_seconds", Help: "Unix time of the oldest commit this node can restore an object to (0 until the first trim)."},
				func() float64 { return float64(rt.historyStats().Oldest) / 1000 }))
	}
	m.openFilesLimit.Set(float64(rt.cfg.MaxOpenFiles))
	return m
}
