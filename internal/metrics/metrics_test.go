package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sagabox/sagabox/internal/metrics"
	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/saga"
)

// A saga whose payment fails: started, its credit step succeeds after
// 20ms, the payment fails after 30ms (the credit starts compensating), the
// compensation is confirmed after 50ms: one saga ended ABORTED after 100ms.
func TestSagasObserve(t *testing.T) {
	t.Parallel()
	reg := metrics.NewRegistry()
	m := metrics.NewSagas(reg)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	state := func(status saga.Status, at time.Duration, steps map[string]saga.StepStatus) saga.State {
		return saga.State{Type: "order-placement", Status: status, StepStatus: steps, CreatedAt: t0, UpdatedAt: t0.Add(at)}
	}
	s0 := state(saga.StatusStarted, 0, map[string]saga.StepStatus{"credit-approval": saga.StepStarted})
	s1 := state(saga.StatusStarted, 20*time.Millisecond, map[string]saga.StepStatus{"credit-approval": saga.StepSucceeded, "payment": saga.StepStarted})
	s2 := state(saga.StatusAborting, 50*time.Millisecond, map[string]saga.StepStatus{"credit-approval": saga.StepCompensating, "payment": saga.StepFailed})
	s3 := state(saga.StatusAborted, 100*time.Millisecond, map[string]saga.StepStatus{"credit-approval": saga.StepCompensated, "payment": saga.StepFailed})
	m.Observe(saga.State{}, s0, "credit-approval", saga.CauseStart)
	m.Observe(s0, s1, "credit-approval", saga.CauseReply)
	m.Observe(s1, s2, "payment", saga.CauseReply)
	m.Observe(s2, s3, "credit-approval", saga.CauseReply)

	want := `
# HELP sagabox_sagas_ended_total Sagas that reached a final status, by that status.
# TYPE sagabox_sagas_ended_total counter
sagabox_sagas_ended_total{outcome="ABORTED",type="order-placement"} 1
# HELP sagabox_sagas_started_total Sagas started.
# TYPE sagabox_sagas_started_total counter
sagabox_sagas_started_total{type="order-placement"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sagabox_sagas_started_total", "sagabox_sagas_ended_total"); err != nil {
		t.Error(err)
	}
	// Per step: how many settled, and the sum of their waits.
	got := map[string]float64{}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "sagabox_saga_step_duration_seconds" && f.GetName() != "sagabox_saga_duration_seconds" {
			continue
		}
		for _, mt := range f.GetMetric() {
			key := f.GetName()
			for _, l := range mt.GetLabel() {
				if l.GetName() != "type" {
					key += " " + l.GetValue()
				}
			}
			h := mt.GetHistogram()
			got[key+" count"] = float64(h.GetSampleCount())
			got[key+" sum"] = h.GetSampleSum()
		}
	}
	for key, v := range map[string]float64{
		"sagabox_saga_step_duration_seconds SUCCEEDED credit-approval count":   1,
		"sagabox_saga_step_duration_seconds SUCCEEDED credit-approval sum":     0.020,
		"sagabox_saga_step_duration_seconds FAILED payment count":              1,
		"sagabox_saga_step_duration_seconds FAILED payment sum":                0.030,
		"sagabox_saga_step_duration_seconds COMPENSATED credit-approval count": 1,
		"sagabox_saga_step_duration_seconds COMPENSATED credit-approval sum":   0.050,
		"sagabox_saga_duration_seconds ABORTED count":                          1,
		"sagabox_saga_duration_seconds ABORTED sum":                            0.100,
	} {
		if diff := got[key] - v; diff > 1e-9 || diff < -1e-9 {
			t.Errorf("%s = %v, want %v (all: %v)", key, got[key], v, got)
		}
	}
	if len(got) != 8 {
		t.Errorf("series: %v, want only the four above (a step that started is not settled)", got)
	}
}

func TestConsumerObserve(t *testing.T) {
	t.Parallel()
	reg := metrics.NewRegistry()
	c := metrics.NewConsumer(reg, "order-service")
	for _, o := range []consumer.Outcome{consumer.RecordApplied, consumer.RecordApplied, consumer.RecordDuplicate,
		consumer.RecordRetried, consumer.RecordRetried, consumer.RecordRetried, consumer.RecordParked} {
		c.Observe("payment.response", o)
	}
	want := `
# HELP sagabox_messages_consumed_total Records handled by the consumer: applied (journal and effect committed) or skipped as a duplicate.
# TYPE sagabox_messages_consumed_total counter
sagabox_messages_consumed_total{consumer="order-service",result="applied",topic="payment.response"} 2
sagabox_messages_consumed_total{consumer="order-service",result="duplicate",topic="payment.response"} 1
# HELP sagabox_messages_parked_total Records parked in parkedmessage (undecodable, permanent error, or out of attempts).
# TYPE sagabox_messages_parked_total counter
sagabox_messages_parked_total{consumer="order-service",topic="payment.response"} 1
# HELP sagabox_messages_retried_total Failed attempts at a record that were retried.
# TYPE sagabox_messages_retried_total counter
sagabox_messages_retried_total{consumer="order-service",topic="payment.response"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"sagabox_messages_consumed_total", "sagabox_messages_parked_total", "sagabox_messages_retried_total"); err != nil {
		t.Error(err)
	}
}
