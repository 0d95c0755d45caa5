package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sagabox/sagabox/pkg/saga"
)

var unknownVersionDesc = prometheus.NewDesc(Namespace+"_sagas_unknown_version",
	"Running sagas of a definition version this service does not hold: nothing drives them until a service that holds it runs.",
	nil, nil)

// RegisterUnknownVersions registers sagabox_sagas_unknown_version, read
// from the database when scraped (Orchestrator.CountUnknown): like the
// database gauges, every instance reports the same value.
func RegisterUnknownVersions(reg prometheus.Registerer, o *saga.Orchestrator, db saga.Querier) {
	reg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		defer cancel()
		n, err := o.CountUnknown(ctx, db)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(unknownVersionDesc, err)
			return
		}
		ch <- prometheus.MustNewConstMetric(unknownVersionDesc, prometheus.GaugeValue, float64(n))
	}))
}

// Sagas counts the orchestrator's sagas and times their steps (pkg/saga's
// Observer). Times are the database's transaction times of the transitions,
// so they are comparable across instances.
type Sagas struct {
	started  *prometheus.CounterVec
	ended    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	step     *prometheus.HistogramVec
}

// latencyBuckets span a step answered in milliseconds to one waiting for a
// participant that was down for minutes.
var latencyBuckets = []float64{.002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

// NewSagas registers on reg:
//
//	sagabox_sagas_started_total{type}
//	sagabox_sagas_ended_total{type,outcome}            outcome SUCCEEDED|ABORTED
//	sagabox_saga_duration_seconds{type,outcome}        start to end (histogram)
//	sagabox_saga_step_duration_seconds{type,step,outcome}
//	    from the transition that sent the message a step waited for (its
//	    request, a re-send or its compensation) to the one that settled it;
//	    outcome SUCCEEDED|FAILED|ABANDONED|COMPENSATED (histogram)
func NewSagas(reg prometheus.Registerer) *Sagas {
	s := &Sagas{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "sagas_started_total", Help: "Sagas started.",
		}, []string{"type"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "sagas_ended_total", Help: "Sagas that reached a final status, by that status.",
		}, []string{"type", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "saga_duration_seconds", Buckets: latencyBuckets,
			Help: "Time from a saga's start to its final status.",
		}, []string{"type", "outcome"}),
		step: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "saga_step_duration_seconds", Buckets: latencyBuckets,
			Help: "Time a step waited for the reply (or deadline, or operator) that settled it, from the message it waited for.",
		}, []string{"type", "step", "outcome"}),
	}
	reg.MustRegister(s.started, s.ended, s.duration, s.step)
	return s
}

// Observe is the saga.Observer.
func (s *Sagas) Observe(prev, next saga.State, _ string, cause saga.CauseKind) {
	if cause == saga.CauseStart {
		s.started.WithLabelValues(next.Type).Inc()
		return
	}
	waited := next.UpdatedAt.Sub(prev.UpdatedAt).Seconds()
	for name, to := range next.StepStatus {
		from := prev.StepStatus[name]
		if from == to || !settled(from, to) {
			continue
		}
		s.step.WithLabelValues(next.Type, name, string(to)).Observe(waited)
	}
	if next.Status.Done() && !prev.Status.Done() {
		outcome := string(next.Status)
		s.ended.WithLabelValues(next.Type, outcome).Inc()
		s.duration.WithLabelValues(next.Type, outcome).Observe(next.UpdatedAt.Sub(next.CreatedAt).Seconds())
	}
}

// settled reports a step change that ends a wait: a request answered or
// given up on, a compensation confirmed.
func settled(from, to saga.StepStatus) bool {
	switch {
	case from == saga.StepStarted:
		return to == saga.StepSucceeded || to == saga.StepFailed || to == saga.StepAbandoned
	case from == saga.StepCompensating:
		return to == saga.StepCompensated
	}
	return false
}
