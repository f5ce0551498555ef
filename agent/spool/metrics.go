package spool

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	bytes       prometheus.Gauge
	spooled     prometheus.Counter
	dropped     *prometheus.CounterVec
	torn        prometheus.Counter
	corrupt     prometheus.Counter
	quarantined prometheus.Counter
	syncErrors  prometheus.Counter
	reg         prometheus.Registerer
}

// unregister removes the collectors, so that a spool reopened in the same
// process can register again.
func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range []prometheus.Collector{m.bytes, m.spooled, m.dropped, m.torn, m.corrupt, m.quarantined, m.syncErrors} {
		m.reg.Unregister(c)
	}
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "fileward_spool_bytes",
			Help: "Bytes of spool segment files on disk."}),
		spooled: prometheus.NewCounter(prometheus.CounterOpts{Name: "fileward_events_spooled_total",
			Help: "Events written to the spool."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fileward_spool_dropped_events_total",
			Help: "Events the spool dropped, by reason (full, no_space, too_large, io_error)."}, []string{"reason"}),
		torn: prometheus.NewCounter(prometheus.CounterOpts{Name: "fileward_spool_torn_tails_total",
			Help: "Torn tails truncated by recovery."}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{Name: "fileward_spool_corrupt_records_total",
			Help: "Damaged record spans found by recovery or by readers."}),
		quarantined: prometheus.NewCounter(prometheus.CounterOpts{Name: "fileward_spool_quarantined_segments_total",
			Help: "Segments moved to quarantine/."}),
		syncErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "fileward_spool_fsync_errors_total",
			Help: "Failed periodic fsyncs."}),
	}
	// Every reason is a series from the start, at zero.
	for _, r := range []string{reasonFull, reasonNoSpace, reasonTooLarge, reasonIOError} {
		m.dropped.WithLabelValues(r)
	}
	m.reg = reg
	if reg != nil {
		reg.MustRegister(m.bytes, m.spooled, m.dropped, m.torn, m.corrupt, m.quarantined, m.syncErrors)
	}
	return m
}
