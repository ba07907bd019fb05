package audit

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stateguard/stateguard/report"
)

// Metrics are the background audit's gauges. They are registered by the
// first pass, so a replica that is not the leader exports none of them
// (rather than a last-run timestamp of 0 that staleness alerts would
// trip on).
type Metrics struct {
	Violations *prometheus.GaugeVec
	LastRun    prometheus.Gauge
	Duration   prometheus.Gauge

	registry   prometheus.Registerer
	registered bool
	// series are the label values of the violation gauges set last pass.
	series map[[3]string]bool
}

// NewMetrics creates the metrics that the first pass registers with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{
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
		registry: reg,
	}
}

// observe sets the violation gauges to the counts of rep. A scrape never
// sees them half-filled: series are set in place, and those of violations
// that are gone are deleted afterwards.
func (m *Metrics) observe(rep *report.Report) {
	if !m.registered {
		m.registry.MustRegister(m.Violations, m.LastRun, m.Duration)
		m.registered = true
	}
	counts := map[[3]string]float64{}
	for _, r := range rep.Results {
		counts[[3]string{r.Rule, r.Namespace, string(r.Action)}]++
	}
	for labels, n := range counts {
		m.Violations.WithLabelValues(labels[:]...).Set(n)
	}
	for labels := range m.series {
		if _, ok := counts[labels]; !ok {
			m.Violations.DeleteLabelValues(labels[:]...)
		}
	}
	m.series = map[[3]string]bool{}
	for labels := range counts {
		m.series[labels] = true
	}
}
