package tracecli

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Row is one span of a trace in waterfall order (see Rows).
type Row struct {
	Span    Span
	Service string
	Depth   int    // 0 for a root
	Parent  string // the parent span's id when it is in the trace, else ""
}

// Rows returns the spans of t in depth-first order from the roots, children
// sorted by start time (span id breaks ties). Spans whose parent is not in
// the trace are roots; spans caught in a parent cycle come last, as roots.
func Rows(t Trace) []Row {
	spans := slices.Clone(t.Spans)
	slices.SortStableFunc(spans, func(a, b Span) int {
		return cmp.Or(cmp.Compare(a.StartTime, b.StartTime), strings.Compare(a.SpanID, b.SpanID))
	})
	present := make(map[string]bool, len(spans))
	for _, s := range spans {
		present[s.SpanID] = true
	}
	var roots []int
	children := make(map[string][]int)
	for i, s := range spans {
		if p := s.ParentID(); p != "" && p != s.SpanID && present[p] {
			children[p] = append(children[p], i)
		} else {
			roots = append(roots, i)
		}
	}
	rows := make([]Row, 0, len(spans))
	visited := make([]bool, len(spans))
	var walk func(i, depth int, parent string)
	walk = func(i, depth int, parent string) {
		if visited[i] {
			return
		}
		visited[i] = true
		rows = append(rows, Row{Span: spans[i], Service: t.ServiceName(spans[i]), Depth: depth, Parent: parent})
		for _, c := range children[spans[i].SpanID] {
			walk(c, depth+1, spans[i].SpanID)
		}
	}
	for _, r := range roots {
		walk(r, 0, "")
	}
	for i := range spans {
		walk(i, 0, "")
	}
	return rows
}

// Waterfall writes t as a text waterfall: a header line (trace id, span
// count, services in order of appearance, total duration), then one line per
// span in Rows order. Each line has the start offset from the trace start,
// the duration, the service and the span name indented two spaces per depth
// level.
func Waterfall(w io.Writer, t Trace) error {
	if len(t.Spans) == 0 {
		return fmt.Errorf("waterfall of trace %s: no spans", t.TraceID)
	}
	traceID := cmp.Or(t.TraceID, t.Spans[0].TraceID)
	rows := Rows(t)
	start, end := rows[0].Span.StartTime, rows[0].Span.StartTime
	var services []string
	for _, r := range rows {
		start = min(start, r.Span.StartTime)
		end = max(end, r.Span.StartTime+r.Span.Duration)
		if !slices.Contains(services, r.Service) {
			services = append(services, r.Service)
		}
	}

	if _, err := fmt.Fprintf(w, "trace %s: %d spans, services: %s, duration %s\n",
		traceID, len(rows), strings.Join(services, ", "), ms(end-start)); err != nil {
		return fmt.Errorf("write waterfall: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "START\tDURATION\tSERVICE\tSPAN")
	for _, r := range rows {
		fmt.Fprintf(tw, "+%s\t%s\t%s\t%s%s\n", ms(r.Span.StartTime-start), ms(r.Span.Duration),
			r.Service, strings.Repeat("  ", r.Depth), r.Span.OperationName)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write waterfall: %w", err)
	}
	return nil
}

// ms formats microseconds as milliseconds with one decimal, e.g. "12.3ms".
func ms(us int64) string {
	return fmt.Sprintf("%.1fms", float64(us)/1000)
}
