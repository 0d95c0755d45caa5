package relay

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// headerCarrier adapts Kafka record headers to OpenTelemetry propagation.
type headerCarrier struct{ r *kgo.Record }

func (c headerCarrier) Get(key string) string {
	for _, h := range c.r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Set replaces the value of an existing traceparent header only: the relay
// never adds headers the connector does not place, and keeps tracestate as
// the outbox row had it.
func (c headerCarrier) Set(key, value string) {
	if key != "traceparent" {
		return
	}
	for i, h := range c.r.Headers {
		if h.Key == key {
			c.r.Headers[i].Value = []byte(value)
		}
	}
}

func (c headerCarrier) Keys() []string {
	keys := make([]string, len(c.r.Headers))
	for i, h := range c.r.Headers {
		keys[i] = h.Key
	}
	return keys
}

var _ propagation.TextMapCarrier = headerCarrier{}

// startPublish starts the producer span of a record, a child of the W3C
// trace context the writer stored in the outbox row (now the record's
// traceparent header), and, when the span is recorded, rewrites that header
// to name it, so the consumer's span hangs under the publish. Records
// without a trace context, or whose span is not recorded (no provider, a
// no-op provider, sampled out), keep their headers exactly.
func startPublish(tp trace.TracerProvider, connector string, kr *kgo.Record) trace.Span {
	carrier := headerCarrier{kr}
	if tp == nil || carrier.Get("traceparent") == "" {
		return nil
	}
	prop := propagation.TraceContext{}
	ctx := prop.Extract(context.Background(), carrier)
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	ctx, span := tp.Tracer("github.com/sagabox/sagabox/pkg/relay").Start(ctx, kr.Topic+" publish",
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", kr.Topic),
			attribute.String("messaging.kafka.message.key", string(kr.Key)),
			attribute.String("messaging.message.id", carrier.Get("id")),
			attribute.String("outbox.connector", connector),
		))
	if !span.IsRecording() {
		span.End()
		return nil
	}
	prop.Inject(ctx, carrier)
	return span
}

// endPublish ends span (if any) once Kafka answered.
func endPublish(span trace.Span, kr *kgo.Record, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "produce failed")
	} else {
		span.SetAttributes(
			attribute.Int("messaging.destination.partition.id", int(kr.Partition)),
			attribute.Int64("messaging.kafka.offset", kr.Offset))
	}
	span.End()
}
