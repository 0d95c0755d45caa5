package e2e_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/registry"
)

// spans collects the finished spans of every component in memory, each
// component with its own service name, as separate processes would export.
type spans struct {
	rec *tracetest.SpanRecorder
	mu  sync.Mutex
	tps []*sdktrace.TracerProvider
}

func newSpans() *spans { return &spans{rec: tracetest.NewSpanRecorder()} }

func (s *spans) provider(component string) trace.TracerProvider {
	name := "outbox-relay"
	if c, err := registry.Lookup(component); err == nil && c.IsService() {
		name = c.DockerName() // the service name it reports (order-service)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSpanProcessor(s.rec),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(name))),
	)
	s.mu.Lock()
	s.tps = append(s.tps, tp)
	s.mu.Unlock()
	return tp
}

type span struct {
	service, name string
	sdktrace.ReadOnlySpan
}

func (s *spans) ended() []span {
	var out []span
	for _, sp := range s.rec.Ended() {
		svc, _ := sp.Resource().Set().Value(semconv.ServiceNameKey)
		out = append(out, span{service: svc.AsString(), name: sp.Name(), ReadOnlySpan: sp})
	}
	return out
}

func (sp span) String() string { return sp.service + " " + sp.name }

func attr(sp span, key attribute.Key) string {
	for _, kv := range sp.Attributes() {
		if kv.Key == key {
			return kv.Value.String()
		}
	}
	return ""
}

// traceOf returns the spans of the trace started by POST /orders of order
// id, and fails unless every message hop span belongs to that one trace.
func traceOf(t *testing.T, all []span, orderID int64) map[trace.SpanID]span {
	t.Helper()
	var root *span
	for i, sp := range all {
		if sp.service == "order-service" && sp.name == "POST /orders" && attr(sp, "order.id") == fmt.Sprint(orderID) {
			root = &all[i]
		}
	}
	if root == nil {
		t.Fatalf("no POST /orders span for order %d", orderID)
	}
	tid := root.SpanContext().TraceID()
	byID := map[trace.SpanID]span{}
	for _, sp := range all {
		hop := strings.HasSuffix(sp.name, " process") || strings.HasSuffix(sp.name, " publish")
		if sp.SpanContext().TraceID() == tid {
			byID[sp.SpanContext().SpanID()] = sp
		} else if hop {
			t.Errorf("%s is in trace %s, not the order's trace %s", sp, sp.SpanContext().TraceID(), tid)
		}
	}
	return byID
}

// chain returns the hop spans of the trace as "service span" lines, each
// hop after its parent hop, checking that every hop's parent is the span
// of the previous step.
func chain(t *testing.T, tr map[trace.SpanID]span) []string {
	t.Helper()
	var root span
	children := map[trace.SpanID][]span{}
	for _, sp := range tr {
		if sp.name == "POST /orders" {
			root = sp
			continue
		}
		children[sp.Parent().SpanID()] = append(children[sp.Parent().SpanID()], sp)
	}
	var out []string
	var walk func(sp span)
	walk = func(sp span) {
		out = append(out, sp.String())
		for _, c := range children[sp.SpanContext().SpanID()] {
			if strings.HasSuffix(c.name, " process") || strings.HasSuffix(c.name, " publish") {
				walk(c)
			}
		}
	}
	walk(root)
	return out
}

func waitForSpan(t *testing.T, rec *spans, service, name string, n int) []span {
	t.Helper()
	var all []span
	testenv.Eventually(t, settleTimeout, func() bool {
		all = rec.ended()
		c := 0
		for _, sp := range all {
			if sp.service == service && sp.name == name {
				c++
			}
		}
		return c >= n
	}, "span %s %s never ended", service, name)
	return all
}

// successHops are the message hops of a succeeding saga, each the parent of
// the next: HTTP → relay publish → customer → relay → order → relay →
// payment → relay → order.
var successHops = []string{
	"order-service POST /orders",
	"outbox-relay credit-approval.request publish",
	"customer-service credit-approval.request process",
	"outbox-relay credit-approval.response publish",
	"order-service credit-approval.response process",
	"outbox-relay payment.request publish",
	"payment-service payment.request process",
	"outbox-relay payment.response publish",
	"order-service payment.response process",
}

// One placed order is one trace: HTTP → relay publish → customer → relay →
// order → relay → payment → relay → order, each hop the child of the one
// before, with the saga transitions as events.
func TestOneOrderIsOneTrace(t *testing.T) {
	t.Parallel()
	rec := newSpans()
	s := startSystem(t, options{tracing: rec.provider})

	p := s.placeOrder(requestFile(t, "place-order.json"))
	s.waitSettled(p.OrderID, settleTimeout)
	all := waitForSpan(t, rec, "order-service", "payment.response process", 1)
	got := chain(t, traceOf(t, all, p.OrderID))
	if want := successHops; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("hops of the trace:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	for _, sp := range traceOf(t, all, p.OrderID) {
		switch sp.name {
		case "credit-approval.request process":
			if sp.SpanKind() != trace.SpanKindConsumer || attr(sp, "messaging.system") != "kafka" ||
				attr(sp, "messaging.destination.name") != "credit-approval.request" ||
				attr(sp, "messaging.kafka.message.key") != p.SagaID || attr(sp, "messaging.message.id") == "" {
				t.Errorf("consumer span attributes: %v", sp.Attributes())
			}
		case "payment.response process":
			if !hasEvent(sp, "saga.status", "SUCCEEDED") {
				t.Errorf("payment.response process has no saga SUCCEEDED event: %v", sp.Events())
			}
		case "credit-approval.request publish":
			if sp.SpanKind() != trace.SpanKindProducer {
				t.Errorf("publish span kind %v", sp.SpanKind())
			}
		}
	}
	// The database work shows as query spans under the hops.
	if !hasSpan(traceOf(t, all, p.OrderID), "order-service", "INSERT outboxevent") {
		t.Error("no INSERT outboxevent query span in the trace")
	}
}

// A compensating saga shows the CANCEL hop too.
func TestCompensationIsInTheTrace(t *testing.T) {
	t.Parallel()
	rec := newSpans()
	s := startSystem(t, options{tracing: rec.provider})

	p := s.placeOrder(requestFile(t, "place-invalid-order1.json"))
	s.waitSettled(p.OrderID, settleTimeout)
	all := waitForSpan(t, rec, "order-service", "credit-approval.response process", 2)
	got := chain(t, traceOf(t, all, p.OrderID))
	want := append(slices.Clone(successHops), successHops[1:5]...) // the CANCEL travels the credit-approval hops again
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("hops of the trace:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var cancel bool
	for _, sp := range traceOf(t, all, p.OrderID) {
		if sp.name == "credit-approval.request process" && attr(sp, "event.type") == "CANCEL" {
			cancel = true
		}
		if sp.name == "payment.response process" && !hasEvent(sp, "saga.status", "ABORTING") {
			t.Errorf("payment.response process has no saga ABORTING event: %v", sp.Events())
		}
	}
	if !cancel {
		t.Error("no CANCEL processed in the customer service within the trace")
	}
}

func hasEvent(sp span, key attribute.Key, value string) bool {
	for _, e := range sp.Events() {
		for _, kv := range e.Attributes {
			if kv.Key == key && kv.Value.String() == value {
				return true
			}
		}
	}
	return false
}

func hasSpan(tr map[trace.SpanID]span, service, name string) bool {
	for _, sp := range tr {
		if sp.service == service && sp.name == name {
			return true
		}
	}
	return false
}
