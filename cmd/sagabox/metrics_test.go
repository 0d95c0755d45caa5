package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sagabox/sagabox/internal/testenv"
)

func decodeJSON(resp *http.Response, out any) error {
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %s", resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// scrape reads url's metrics with the Prometheus text parser.
func scrape(t *testing.T, url string) (map[string]*dto.MetricFamily, error) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// value returns the value of the series of family name whose labels
// include want ("k=v" pairs), summed over the other labels: a counter's or
// a gauge's value, a histogram's count.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
	sum := 0.0
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for _, w := range want {
			k, v, _ := strings.Cut(w, "=")
			if labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// expectation is one series and its value after the test's traffic.
type expectation struct {
	name   string
	labels []string
	want   float64
}

// checkMetrics scrapes every component of u after TestConsoleInBrowser's
// traffic — four order-placement sagas: one SUCCEEDED; one whose payment
// failed (credit compensated); one refused credit; one aborted by an
// operator while its payment service hung (credit compensated, then the
// payment, which the payment service took and refunded when it came back).
// Messages: credit-approval.request 6 (4 requests, 2 cancels) and 6
// replies; payment.request 4 (3 requests, 1 cancel) and 4 replies; one
// audit event.
func checkMetrics(t *testing.T, u *upRun) {
	t.Helper()
	const typ = "type=order-placement"
	components := map[string][]expectation{
		u.order + "/metrics": {
			{"sagabox_sagas_started_total", []string{typ}, 4},
			{"sagabox_sagas_ended_total", []string{typ, "outcome=SUCCEEDED"}, 1},
			{"sagabox_sagas_ended_total", []string{typ, "outcome=ABORTED"}, 3},
			{"sagabox_saga_duration_seconds", []string{typ}, 4},
			{"sagabox_saga_step_duration_seconds", []string{"step=credit-approval", "outcome=SUCCEEDED"}, 3},
			{"sagabox_saga_step_duration_seconds", []string{"step=credit-approval", "outcome=FAILED"}, 1},
			{"sagabox_saga_step_duration_seconds", []string{"step=credit-approval", "outcome=COMPENSATED"}, 2},
			{"sagabox_saga_step_duration_seconds", []string{"step=payment", "outcome=SUCCEEDED"}, 1},
			{"sagabox_saga_step_duration_seconds", []string{"step=payment", "outcome=FAILED"}, 1},
			{"sagabox_saga_step_duration_seconds", []string{"step=payment", "outcome=ABANDONED"}, 1},
			{"sagabox_saga_step_duration_seconds", []string{"step=payment", "outcome=COMPENSATED"}, 1},
			{"sagabox_messages_consumed_total", []string{"consumer=order-service", "topic=credit-approval.response", "result=applied"}, 6},
			{"sagabox_messages_consumed_total", []string{"consumer=order-service", "topic=payment.response", "result=applied"}, 4},
			{"sagabox_messages_parked_total", nil, 0},
			{"sagabox_consumer_lag", []string{"consumer=order-service"}, 0},
			{"sagabox_outbox_rows_pending_prune", []string{"service=order"}, 13},
			{"sagabox_parked_messages", []string{"service=order"}, 0},
			// The accepted order's cancellation: both steps at once.
			{"sagabox_sagas_started_total", []string{"type=order-cancellation"}, 1},
			{"sagabox_sagas_ended_total", []string{"type=order-cancellation", "outcome=SUCCEEDED"}, 1},
			{"sagabox_messages_consumed_total", []string{"consumer=order-service", "topic=payment-refund.response", "result=applied"}, 1},
			{"sagabox_messages_consumed_total", []string{"consumer=order-service", "topic=credit-release.response", "result=applied"}, 1},
			{"sagabox_sagas_unknown_version", nil, 0},
		},
		u.customer + "/metrics": {
			{"sagabox_messages_consumed_total", []string{"topic=credit-approval.request", "result=applied"}, 6},
			{"sagabox_consumer_lag", []string{"consumer=customer-service"}, 0},
			{"sagabox_messages_consumed_total", []string{"topic=credit-release.request", "result=applied"}, 1},
			{"sagabox_outbox_rows_pending_prune", []string{"service=customer"}, 7},
			{"sagabox_parked_messages", []string{"service=customer"}, 0},
		},
		u.payment + "/metrics": {
			{"sagabox_messages_consumed_total", []string{"topic=payment.request", "result=applied"}, 4},
			{"sagabox_consumer_lag", []string{"consumer=payment-service"}, 0},
			{"sagabox_messages_consumed_total", []string{"topic=payment-refund.request", "result=applied"}, 1},
			{"sagabox_outbox_rows_pending_prune", []string{"service=payment"}, 5},
		},
		u.relayMetrics: {
			{"sagabox_relay_events_published_total", []string{"connector=order-outbox", "topic=credit-approval.request"}, 6},
			{"sagabox_relay_events_published_total", []string{"connector=order-outbox", "topic=payment.request"}, 4},
			{"sagabox_relay_events_published_total", []string{"connector=order-outbox", "topic=order-admin.request"}, 1},
			{"sagabox_relay_events_published_total", []string{"connector=customer-outbox", "topic=credit-approval.response"}, 6},
			{"sagabox_relay_events_published_total", []string{"connector=payment-outbox", "topic=payment.response"}, 4},
			{"sagabox_relay_events_published_total", []string{"connector=order-outbox", "topic=payment-refund.request"}, 1},
			{"sagabox_relay_events_published_total", []string{"connector=order-outbox", "topic=credit-release.request"}, 1},
			{"sagabox_relay_events_published_total", []string{"connector=customer-outbox", "topic=credit-release.response"}, 1},
			{"sagabox_relay_events_published_total", []string{"connector=payment-outbox", "topic=payment-refund.response"}, 1},
			{"sagabox_relay_slot_active", nil, 4},
		},
		u.brokerMetrics: {
			{"sagabox_broker_log_end_offset", []string{"topic=credit-approval.request"}, 6},
			{"sagabox_broker_log_end_offset", []string{"topic=credit-approval.response"}, 6},
			{"sagabox_broker_log_end_offset", []string{"topic=payment.request"}, 4},
			{"sagabox_broker_log_end_offset", []string{"topic=payment.response"}, 4},
			{"sagabox_broker_log_end_offset", []string{"topic=order-admin.request"}, 1},
			{"sagabox_broker_log_end_offset", []string{"topic=payment-refund.request"}, 1},
			{"sagabox_broker_log_end_offset", []string{"topic=credit-release.response"}, 1},
		},
		u.console + "/metrics": nil, // parses, with the runtime's metrics

	}
	for url, exps := range components {
		var (
			fams    map[string]*dto.MetricFamily
			err     error
			missing []string
		)
		// Values settle within a moment (offsets are committed every 500ms,
		// the relay's last acknowledgements arrive): wait for all of them.
		testenv.Eventually(t, 30*time.Second, func() bool {
			fams, err = scrape(t, url)
			if err != nil {
				return false
			}
			missing = missing[:0]
			for _, e := range exps {
				if got := value(fams, e.name, e.labels...); got != e.want && !(e.want == 0 && got == -1) {
					missing = append(missing, fmt.Sprintf("%s%v = %v, want %v", e.name, e.labels, got, e.want))
				}
			}
			return len(missing) == 0
		}, "metrics of %s: err %v, wrong: %v", url, &err, &missing)
		for _, want := range []string{"go_goroutines", "process_resident_memory_bytes"} {
			if _, ok := fams[want]; !ok {
				t.Errorf("%s has no %s", url, want)
			}
		}
	}

	// The relay's lag: one series per slot, never more than the WAL the
	// slot retains.
	fams, err := scrape(t, u.relayMetrics)
	if err != nil {
		t.Fatal(err)
	}
	for _, connector := range []string{"order-outbox", "order-sagastate", "customer-outbox", "payment-outbox"} {
		lag := value(fams, "sagabox_relay_lag_bytes", "connector="+connector)
		retained := value(fams, "sagabox_relay_slot_retained_wal_bytes", "connector="+connector)
		if lag < 0 || retained < lag {
			t.Errorf("connector %s: lag %v bytes, retained %v bytes: want 0 <= lag <= retained", connector, lag, retained)
		}
	}
}
