package supervisor

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the node's Prometheus metrics. They count lifecycle and
// refusal events, never individual messages, so the message path pays
// nothing for them.
//
// # Concurrency
//
// Goroutine-safe (Prometheus collectors are).
type Metrics struct {
	Registry    *prometheus.Registry
	failures    *prometheus.CounterVec
	restarts    *prometheus.CounterVec
	quarantines *prometheus.CounterVec
	quota       *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	upgrades    *prometheus.CounterVec
	states      *prometheus.GaugeVec
}

func newMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "astrid_capsule_failures_total", Help: "Capsule failures by capsule, kind and directive.",
		}, []string{"capsule", "kind", "directive"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "astrid_capsule_restarts_total", Help: "New incarnations started after the first, by capsule.",
		}, []string{"capsule"}),
		quarantines: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "astrid_capsule_quarantines_total", Help: "Capsules quarantined after exceeding their restart intensity.",
		}, []string{"capsule"}),
		quota: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "astrid_quota_exceeded_total", Help: "Calls refused by a quota, by capsule, principal and quota.",
		}, []string{"capsule", "principal", "quota"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "astrid_deadletters_total", Help: "Messages parked on astrid.v1.deadletter, by capsule.",
		}, []string{"capsule"}),
		upgrades: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "astrid_capsule_upgrades_total", Help: "Installs, upgrades and rolled-back upgrades, by capsule and result.",
		}, []string{"capsule", "result"}),
		states: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "astrid_capsule_state", Help: "1 for the state each capsule is in (starting, ready, failed, quarantined, stopped).",
		}, []string{"capsule", "state"}),
	}
	m.Registry.MustRegister(m.failures, m.restarts, m.quarantines, m.quota, m.deadLetters, m.upgrades, m.states,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

var capsuleStates = []string{"starting", "ready", "failed", "quarantined", "stopped"}

func (m *Metrics) setState(capsule, state string) {
	for _, s := range capsuleStates {
		v := 0.0
		if s == state {
			v = 1
		}
		m.states.WithLabelValues(capsule, s).Set(v)
	}
}

// observe updates the metrics from a lifecycle event.
func (n *Node) observe(ev Event) {
	m := n.metrics
	switch ev.Event {
	case "started", "restarted":
		if ev.Event == "restarted" {
			m.restarts.WithLabelValues(ev.Capsule).Inc()
		}
		m.setState(ev.Capsule, "starting")
	case "ready":
		m.setState(ev.Capsule, "ready")
	case "failed":
		m.failures.WithLabelValues(ev.Capsule, ev.Kind, ev.Directive).Inc()
		switch ev.Directive {
		case "rollback":
			m.upgrades.WithLabelValues(ev.Capsule, "rolled-back").Inc()
		case "restart":
			m.setState(ev.Capsule, "failed")
		}
	case "quarantined":
		m.quarantines.WithLabelValues(ev.Capsule).Inc()
		m.setState(ev.Capsule, "quarantined")
	case "stopped":
		m.setState(ev.Capsule, "stopped")
	case "installed", "upgraded":
		m.upgrades.WithLabelValues(ev.Capsule, ev.Event).Inc()
	}
}

// Metrics returns the node's Prometheus metrics.
func (n *Node) Metrics() *Metrics { return n.metrics }
