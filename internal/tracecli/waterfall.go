package tracecli

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Waterfall writes t as a text waterfall: a header line (trace id, span
// count, services in order of appearance, total duration), then one line per
// span in depth-first order from the roots, children sorted by start time.
// Each line has the start offset from the trace start, the duration, the
// service and the span name indented two spaces per depth level. Spans whose
// parent is not in the trace are shown as roots.
func Waterfall(w io.Writer, t Trace) error {
	if len(t.Spans) == 0 {
		return fmt.Errorf("waterfall of trace %s: no spans", t.TraceID)
	}
	traceID := cmp.Or(t.TraceID, t.Spans[0].TraceID)

	// Order spans by start time (span id breaks ties) so that roots and
	// children come out sorted.
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

	type row struct {
		span  Span
		depth int
	}
	rows := make([]row, 0, len(spans))
	visited := make([]bool, len(spans))
	var walk func(i, depth int)
	walk = func(i, depth int) {
		if visited[i] {
			return
		}
		visited[i] = true
		rows = append(rows, row{spans[i], depth})
		for _, c := range children[spans[i].SpanID] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	// Spans in a parent cycle are unreachable from any root: show them too.
	for i := range spans {
		walk(i, 0)
	}

	start, end := spans[0].StartTime, spans[0].StartTime
	var services []string
	for _, r := range rows {
		end = max(end, r.span.StartTime+r.span.Duration)
		if svc := t.ServiceName(r.span); !slices.Contains(services, svc) {
			services = append(services, svc)
		}
	}

	if _, err := fmt.Fprintf(w, "trace %s: %d spans, services: %s, duration %s\n",
		traceID, len(spans), strings.Join(services, ", "), ms(end-start)); err != nil {
		return fmt.Errorf("write waterfall: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "START\tDURATION\tSERVICE\tSPAN")
	for _, r := range rows {
		fmt.Fprintf(tw, "+%s\t%s\t%s\t%s%s\n", ms(r.span.StartTime-start), ms(r.span.Duration),
			t.ServiceName(r.span), strings.Repeat("  ", r.depth), r.span.OperationName)
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
