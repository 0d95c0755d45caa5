package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/internal/tracecli"
)

// startJaeger runs bin/jaeger on free ports (testenv.Jaeger); the test is
// skipped when Jaeger is not built (CI builds it).
func startJaeger(t *testing.T) (otlp, query string) {
	t.Helper()
	if bin, ok := testenv.JaegerBinary(t); !ok {
		t.Skipf("Jaeger is not built at %s, so its end-to-end test cannot run (scripts/build-jaeger.sh builds it; CI does)", bin)
	}
	return testenv.Jaeger(t)
}

// The same trace, exported over OTLP by every component, is found through
// Jaeger's API by the order id and prints as a waterfall.
func TestTraceInJaeger(t *testing.T) {
	t.Parallel()
	otlp, query := startJaeger(t)
	s := startSystemEnv(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": otlp})

	p := s.placeOrder(requestFile(t, "place-order.json"))
	s.waitSettled(p.OrderID, settleTimeout)

	ctx := context.Background()
	client := &http.Client{Timeout: 5 * time.Second}
	want := []string{
		"order-service POST /orders",
		"outbox-relay credit-approval.request publish",
		"customer-service credit-approval.request process",
		"order-service credit-approval.response process",
		"outbox-relay payment.request publish",
		"payment-service payment.request process",
		"order-service payment.response process",
	}
	var (
		tr     tracecli.Trace
		gotOps []string
	)
	testenv.Eventually(t, 30*time.Second, func() bool {
		ids, err := tracecli.FindByTag(ctx, client, query, "order-service", "order.id", fmt.Sprint(p.OrderID), time.Hour)
		if err != nil || len(ids) != 1 {
			return false
		}
		if tr, err = tracecli.Fetch(ctx, client, query, ids[0]); err != nil {
			return false
		}
		gotOps = gotOps[:0]
		for _, sp := range tr.Spans {
			gotOps = append(gotOps, tr.ServiceName(sp)+" "+sp.OperationName)
		}
		for _, w := range want {
			if !slices.Contains(gotOps, w) {
				return false
			}
		}
		return true
	}, "trace of order %d incomplete in Jaeger; spans: %v", p.OrderID, &gotOps)

	var buf bytes.Buffer
	if err := tracecli.Waterfall(&buf, tr); err != nil {
		t.Fatal(err)
	}
	t.Logf("trace of order %d:\n%s", p.OrderID, buf.String())
	for _, w := range want {
		if op := w[strings.Index(w, " ")+1:]; !strings.Contains(buf.String(), op) {
			t.Errorf("waterfall misses %q", op)
		}
	}
}
