package webhook

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the admission metrics of stateguard, beside controller-runtime's webhook metrics.
type Metrics struct {
	Decisions *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stateguard_admission_decisions_total",
			Help: "Admission decisions by rule and action: the effective action (deny, warn, exempt), or under dryrun enforcement the action enforcing would give (the request was admitted silently); allow with rule none for objects without violations, error with rule none when stateguard could not judge.",
		}, []string{"rule", "action", "operation", "kind"}),
	}
	reg.MustRegister(m.Decisions)
	return m
}
