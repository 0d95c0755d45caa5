package tracecli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testdata/trace.json is a real /api/traces/{id} answer of Jaeger v1.76.0
// (deploy/jaeger/local.yaml) for a saga sent to it over OTLP/HTTP.
const testTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"

func readTestdata(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/trace.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadTrace(t *testing.T) Trace {
	t.Helper()
	var r response
	if err := json.Unmarshal(readTestdata(t), &r); err != nil {
		t.Fatalf("decode testdata: %v", err)
	}
	if len(r.Data) != 1 {
		t.Fatalf("testdata has %d traces, want 1", len(r.Data))
	}
	return r.Data[0]
}

// span builds a span of trace "t1" emitted by process pid.
func span(id, parent, pid, name string, start, dur int64) Span {
	s := Span{TraceID: "t1", SpanID: id, OperationName: name, StartTime: start, Duration: dur, ProcessID: pid}
	if parent != "" {
		s.References = []Reference{{RefType: ChildOf, TraceID: "t1", SpanID: parent}}
	}
	return s
}

var testProcesses = map[string]Process{"p1": {ServiceName: "svc-a"}, "p2": {ServiceName: "svc-b"}}

func TestWaterfall(t *testing.T) {
	t.Parallel()
	followsOnly := span("c", "", "p2", "async", 1_500, 100)
	followsOnly.References = []Reference{{RefType: FollowsFrom, TraceID: "t1", SpanID: "a"}}

	tests := []struct {
		name  string
		trace Trace
		want  string
	}{
		{
			name:  "saga from jaeger",
			trace: loadTrace(t),
			want: `trace 4bf92f3577b34da6a3ce929d0e0e4736: 7 spans, services: order-service, customer-service, payment-service, duration 46.5ms
START    DURATION  SERVICE           SPAN
+0.0ms   9.8ms     order-service     POST /orders
+0.8ms   7.1ms     order-service       pg.tx create-order
+14.2ms  1.9ms     order-service       credit-approval.request publish
+17.5ms  6.3ms     customer-service      credit-approval.request process
+26.1ms  4.4ms     order-service           credit-approval.response process
+33.0ms  7.2ms     payment-service           payment.request process
+42.6ms  3.9ms     order-service               payment.response process
`,
		},
		{
			name: "missing parent is a root",
			trace: Trace{TraceID: "t1", Processes: testProcesses, Spans: []Span{
				span("orphan-child", "orphan", "p2", "late child", 3_000, 300),
				span("orphan", "gone", "p2", "orphan", 2_000, 1_500),
				span("root", "", "p1", "root", 1_000, 500),
			}},
			want: `trace t1: 3 spans, services: svc-a, svc-b, duration 2.5ms
START   DURATION  SERVICE  SPAN
+0.0ms  0.5ms     svc-a    root
+1.0ms  1.5ms     svc-b    orphan
+2.0ms  0.3ms     svc-b      late child
`,
		},
		{
			name: "follows from and unknown process",
			trace: Trace{TraceID: "t1", Processes: testProcesses, Spans: []Span{
				span("b", "a", "p9", "second", 1_200, 300),
				followsOnly,
				span("a", "", "p1", "first", 1_000, 1_000),
			}},
			want: `trace t1: 3 spans, services: svc-a, unknown, svc-b, duration 1.0ms
START   DURATION  SERVICE  SPAN
+0.0ms  1.0ms     svc-a    first
+0.2ms  0.3ms     unknown    second
+0.5ms  0.1ms     svc-b      async
`,
		},
		{
			name: "parent cycle is still shown",
			trace: Trace{TraceID: "t1", Processes: testProcesses, Spans: []Span{
				span("x", "y", "p1", "x", 10_000, 1_000),
				span("y", "x", "p1", "y", 11_000, 1_000),
			}},
			want: `trace t1: 2 spans, services: svc-a, duration 2.0ms
START   DURATION  SERVICE  SPAN
+0.0ms  1.0ms     svc-a    x
+1.0ms  1.0ms     svc-a      y
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			if err := Waterfall(&buf, tt.trace); err != nil {
				t.Fatalf("Waterfall: %v", err)
			}
			if got := buf.String(); got != tt.want {
				t.Errorf("Waterfall output differs (-want +got):\n%s", lineDiff(tt.want, got))
			}
		})
	}
}

func TestWaterfallErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		w     *failWriter
		trace Trace
		want  string
	}{
		{"empty trace", &failWriter{}, Trace{TraceID: "t1"}, "waterfall of trace t1: no spans"},
		{"write error", &failWriter{err: errors.New("disk full")}, loadTrace(t), "write waterfall: disk full"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Waterfall(tt.w, tt.trace)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Waterfall error = %v, want %q", err, tt.want)
			}
		})
	}
}

type failWriter struct{ err error }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// lineDiff shows want and got line by line, marking the lines that differ.
func lineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := range max(len(wl), len(gl)) {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w == g {
			fmt.Fprintf(&b, "  %q\n", w)
			continue
		}
		fmt.Fprintf(&b, "- %q\n+ %q\n", w, g)
	}
	return b.String()
}

func TestFetch(t *testing.T) {
	t.Parallel()
	trace := readTestdata(t)
	tests := []struct {
		name    string
		status  int
		body    string
		wantErr string // substring; "" means success
		notFnd  bool   // error must match ErrNotFound
	}{
		{name: "ok", status: 200, body: string(trace)},
		{name: "jaeger 404", status: 404, body: `{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":404,"msg":"trace not found"}]}`,
			wantErr: "fetch trace " + testTraceID + ": unexpected status 404 Not Found: trace not found", notFnd: true},
		{name: "other 404", status: 404, body: "404 page not found",
			wantErr: "unexpected status 404 Not Found: 404 page not found"},
		{name: "500", status: 500, body: "boom", wantErr: "unexpected status 500 Internal Server Error: boom"},
		{name: "malformed json", status: 200, body: `{"data":[`, wantErr: "fetch trace " + testTraceID + ": decode response:"},
		{name: "html page", status: 200, body: "<!DOCTYPE html>", wantErr: "decode response: invalid character '<'"},
		{name: "no data", status: 200, body: `{"data":[],"errors":null}`, wantErr: "no data: trace not found", notFnd: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet || r.URL.Path != "/api/traces/"+testTraceID {
					t.Errorf("request %s %s, want GET /api/traces/%s", r.Method, r.URL.Path, testTraceID)
				}
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			t.Cleanup(srv.Close)

			got, err := Fetch(t.Context(), srv.Client(), srv.URL+"/", testTraceID)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Fetch error = %v, want it to contain %q", err, tt.wantErr)
				}
				if errors.Is(err, ErrNotFound) != tt.notFnd {
					t.Errorf("errors.Is(%v, ErrNotFound) = %v, want %v", err, !tt.notFnd, tt.notFnd)
				}
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if got.TraceID != testTraceID || len(got.Spans) != 7 || len(got.Processes) != 3 {
				t.Fatalf("Fetch = trace %s with %d spans, %d processes; want %s, 7, 3",
					got.TraceID, len(got.Spans), len(got.Processes), testTraceID)
			}
			// Spot-check the decoded shape of one span.
			var pay Span
			for _, s := range got.Spans {
				if s.OperationName == "payment.response process" {
					pay = s
				}
			}
			if pay.SpanID != "e457b5a2e4d86bd1" || pay.ParentID() != "c5b2f1a07e3d4b61" ||
				len(pay.References) != 2 || pay.References[1].RefType != FollowsFrom ||
				pay.Duration != 3902 || got.ServiceName(pay) != "order-service" {
				t.Errorf("payment.response span decoded as %+v", pay)
			}
		})
	}
}

func TestFetchTransportError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens any more
	_, err := Fetch(t.Context(), srv.Client(), srv.URL, "abc")
	if err == nil || !strings.HasPrefix(err.Error(), "fetch trace abc: ") || errors.Is(err, ErrNotFound) {
		t.Fatalf("Fetch error = %v, want a wrapped connection error", err)
	}
}

func TestFindByTag(t *testing.T) {
	t.Parallel()
	search := `{"data":[{"traceID":"aaa","spans":[],"processes":{}},{"traceID":"bbb","spans":[],"processes":{}},{"traceID":"aaa"}],"total":0,"limit":0,"offset":0,"errors":null}`
	tests := []struct {
		name    string
		status  int
		body    string
		want    []string
		wantErr string
	}{
		{name: "found", status: 200, body: search, want: []string{"aaa", "bbb"}},
		{name: "none", status: 200, body: `{"data":[],"total":0,"limit":0,"offset":0,"errors":null}`},
		{name: "400 from jaeger", status: 400,
			body:    `{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":400,"msg":"malformed 'tags' parameter"}]}`,
			wantErr: "find traces of order-service by tag saga.order_id=o-1: unexpected status 400 Bad Request: malformed 'tags' parameter"},
		{name: "500", status: 500, body: "boom", wantErr: "unexpected status 500 Internal Server Error: boom"},
		{name: "malformed json", status: 200, body: `{"data":{}}`, wantErr: "decode response:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				checkSearchQuery(t, r)
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			t.Cleanup(srv.Close)

			got, err := FindByTag(t.Context(), srv.Client(), srv.URL, "order-service", "saga.order_id", "o-1", time.Hour)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("FindByTag error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("FindByTag: %v", err)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("FindByTag = %q, want %q", got, tt.want)
			}
		})
	}
}

// checkSearchQuery checks the request FindByTag sends for a one-hour lookback.
func checkSearchQuery(t *testing.T, r *http.Request) {
	t.Helper()
	if r.URL.Path != "/api/traces" {
		t.Errorf("path = %q, want /api/traces", r.URL.Path)
	}
	q := r.URL.Query()
	for key, want := range map[string]string{"service": "order-service", "limit": "20", "lookback": "1h0m0s"} {
		if got := q.Get(key); got != want {
			t.Errorf("query %s = %q, want %q", key, got, want)
		}
	}
	var tags map[string]string
	if err := json.Unmarshal([]byte(q.Get("tags")), &tags); err != nil || len(tags) != 1 || tags["saga.order_id"] != "o-1" {
		t.Errorf("query tags = %q (%v), want {\"saga.order_id\":\"o-1\"}", q.Get("tags"), err)
	}
	start, err1 := strconv.ParseInt(q.Get("start"), 10, 64)
	end, err2 := strconv.ParseInt(q.Get("end"), 10, 64)
	if err1 != nil || err2 != nil || end-start != time.Hour.Microseconds() {
		t.Errorf("query start=%q end=%q, want microseconds one hour apart", q.Get("start"), q.Get("end"))
	}
}

func TestFindByTagBadLookback(t *testing.T) {
	t.Parallel()
	_, err := FindByTag(t.Context(), nil, "http://127.0.0.1:1", "svc", "k", "v", 0)
	if err == nil || !strings.Contains(err.Error(), "lookback must be positive") {
		t.Fatalf("FindByTag error = %v, want lookback error", err)
	}
}
