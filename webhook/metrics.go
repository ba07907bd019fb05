package webhook

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Modes of a decision: what took effect, or what dryrun only observed.
const (
	ModeEnforce = "enforce"
	ModeDryRun  = "dryrun"
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
			Help: "Admission decisions by rule and action (deny, warn, exempt; allow with rule none for objects without violations, error with rule none when stateguard could not judge). mode is enforce when the action took effect, dryrun when it was only observed: action is then what enforcing would have done, and the request was admitted.",
		}, []string{"rule", "action", "mode", "operation", "kind"}),
	}
	reg.MustRegister(m.Decisions)
	return m
}
