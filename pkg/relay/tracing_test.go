package relay

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TestPublishSpanHeaders: without a recorded span the trace headers are
// exactly the outbox row's (what Debezium copies); with one, traceparent
// names the relay's span in the same trace and tracestate is kept as is.
func TestPublishSpanHeaders(t *testing.T) {
	t.Parallel()
	const (
		sampled    = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		notSampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
		state      = "vendor=x , other=y"
	)
	record := func(tp string) *kgo.Record {
		return &kgo.Record{Topic: "t", Headers: []kgo.RecordHeader{
			{Key: "id", Value: []byte("1")}, {Key: "traceparent", Value: []byte(tp)}, {Key: "tracestate", Value: []byte(state)},
		}}
	}
	recorder := tracetest.NewSpanRecorder()
	sdk := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	for name, tc := range map[string]struct {
		tp       trace.TracerProvider
		parent   string
		rewrites bool
	}{
		"no provider":   {nil, sampled, false},
		"noop provider": {noop.NewTracerProvider(), sampled, false},
		"not sampled":   {sdk, notSampled, false},
		"recorded":      {sdk, sampled, true},
	} {
		kr := record(tc.parent)
		span := startPublish(tc.tp, "c", kr)
		endPublish(span, kr, nil)
		gotTP, gotState := headerCarrier{kr}.Get("traceparent"), headerCarrier{kr}.Get("tracestate")
		if gotState != state {
			t.Errorf("%s: tracestate = %q, want it verbatim", name, gotState)
		}
		switch {
		case !tc.rewrites && gotTP != tc.parent:
			t.Errorf("%s: traceparent = %q, want it verbatim %q", name, gotTP, tc.parent)
		case tc.rewrites && (gotTP == tc.parent || !strings.HasPrefix(gotTP, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || !strings.HasSuffix(gotTP, "-01")):
			t.Errorf("%s: traceparent = %q, want the relay's span in trace 4bf92f…", name, gotTP)
		}
	}
	if spans := recorder.Ended(); len(spans) != 1 || spans[0].Name() != "t publish" {
		t.Errorf("recorded spans %v, want one \"t publish\"", spans)
	}
}
