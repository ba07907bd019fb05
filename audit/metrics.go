package audit

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stateguard/stateguard/report"
)

// Metrics are the background audit's gauges.
type Metrics struct {
	Violations *prometheus.GaugeVec
	LastRun    prometheus.Gauge
	Duration   prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Violations: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stateguard_audit_violations",
			Help: "Violations found by the last background audit, by rule, namespace and effective action (deny, warn, dryrun, exempt).",
		}, []string{"rule", "namespace", "action"}),
		LastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stateguard_audit_last_run_timestamp_seconds",
			Help: "When the last background audit pass ended, in seconds since the Unix epoch.",
		}),
		Duration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stateguard_audit_last_run_duration_seconds",
			Help: "How long the last background audit pass took.",
		}),
	}
	reg.MustRegister(m.Violations, m.LastRun, m.Duration)
	return m
}

// observe replaces the violation counts with those of rep, so a fixed
// violation's series disappears.
func (m *Metrics) observe(rep *report.Report) {
	m.Violations.Reset()
	for _, r := range rep.Results {
		m.Violations.WithLabelValues(r.Rule, r.Namespace, string(r.Action)).Inc()
	}
}
