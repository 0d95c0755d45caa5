package console

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sagabox/sagabox/internal/tracecli"
)

// traceView is a trace drawn as a waterfall: a row per span, its bar placed
// on the trace's time axis, and before a message's span the gap since the
// span that sent it — the time the message spent in the outbox, the WAL and
// Kafka.
type traceView struct {
	TraceID    string
	DurationMs float64
	Services   []serviceLegend
	Rows       []spanRow
	Ticks      []tick
	JaegerLink string // the trace in Jaeger's UI, when configured
}

type serviceLegend struct {
	Name  string
	Class string
}

type spanRow struct {
	Service, Class, Name string
	Depth                int
	StartMs, DurMs       float64
	Left, Width          float64 // percent of the axis
	GapLeft, GapWidth    float64 // percent; GapWidth 0: no gap shown
	GapLabel             string
	Error                bool
	DB                   bool    // a database query's span (hidden unless asked for)
	Label                float64 // percent where the duration label starts
	LabelBefore          bool    // the label goes before the bar (near the right end)
}

type tick struct {
	Left  float64
	Label string
}

// serviceClass gives every service its colour class; the four of this
// system have fixed ones.
func serviceClass(service string) string {
	switch service {
	case "order-service":
		return "svc-order"
	case "customer-service":
		return "svc-customer"
	case "payment-service":
		return "svc-payment"
	case "outbox-relay":
		return "svc-relay"
	}
	return "svc-other"
}

func newTraceView(t tracecli.Trace, jaegerUI string) traceView {
	rows := tracecli.Rows(t)
	v := traceView{TraceID: t.TraceID}
	if len(rows) == 0 {
		return v
	}
	start, end := rows[0].Span.StartTime, rows[0].Span.StartTime
	for _, r := range rows {
		start = min(start, r.Span.StartTime)
		end = max(end, r.Span.StartTime+r.Span.Duration)
	}
	total := float64(max(end-start, 1))
	v.DurationMs = float64(end-start) / 1000
	ends := map[string]int64{}
	for _, r := range rows {
		ends[r.Span.SpanID] = r.Span.StartTime + r.Span.Duration
	}
	for _, r := range rows {
		s := r.Span
		row := spanRow{
			Service: r.Service, Class: serviceClass(r.Service), Name: s.OperationName, Depth: r.Depth,
			StartMs: float64(s.StartTime-start) / 1000, DurMs: float64(s.Duration) / 1000,
			Left: 100 * float64(s.StartTime-start) / total, Width: max(100*float64(s.Duration)/total, 0.25),
			Error: hasErrorTag(s), DB: hasTag(s, "db.system") || hasTag(s, "db.system.name"),
		}
		row.Label = row.Left + row.Width
		if row.Label > 70 {
			row.Label, row.LabelBefore = row.Left, true
		}
		// A message's span starts after its sender's span ended: the gap
		// is the time it waited.
		if pe, ok := ends[r.Parent]; ok && s.StartTime > pe {
			if where := waitedIn(s.OperationName); where != "" {
				row.GapLeft = 100 * float64(pe-start) / total
				row.GapWidth = 100 * float64(s.StartTime-pe) / total
				row.GapLabel = fmt.Sprintf("%.1f ms in %s", float64(s.StartTime-pe)/1000, where)
			}
		}
		v.Rows = append(v.Rows, row)
		if !slices.ContainsFunc(v.Services, func(l serviceLegend) bool { return l.Name == r.Service }) {
			v.Services = append(v.Services, serviceLegend{Name: r.Service, Class: row.Class})
		}
	}
	for i := range 5 {
		v.Ticks = append(v.Ticks, tick{Left: float64(i) * 25, Label: fmt.Sprintf("%.1f ms", v.DurationMs*float64(i)/4)})
	}
	if jaegerUI != "" {
		v.JaegerLink = jaegerUI + "/trace/" + t.TraceID
	}
	return v
}

// waitedIn names where a message waited before the span that handles it:
// a relay's publish span follows the outbox row's commit, a consumer's
// process span follows the publish.
func waitedIn(operation string) string {
	switch {
	case strings.HasSuffix(operation, " publish"):
		return "outbox and WAL"
	case strings.HasSuffix(operation, " process"):
		return "Kafka"
	}
	return ""
}

func hasErrorTag(s tracecli.Span) bool {
	for _, t := range s.Tags {
		if t.Key == "error" && t.Value == true || t.Key == "otel.status_code" && t.Value == "ERROR" {
			return true
		}
	}
	return false
}

func hasTag(s tracecli.Span, key string) bool {
	for _, t := range s.Tags {
		if t.Key == key {
			return true
		}
	}
	return false
}
