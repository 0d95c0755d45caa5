// Package tracecli reads traces from Jaeger's query HTTP API
// (/api/traces, /api/traces/{id}) and prints them as a text waterfall.
package tracecli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrNotFound is wrapped by Fetch when Jaeger has no trace with the given id
// (yet: spans reach Jaeger's storage after a short batching delay).
var ErrNotFound = errors.New("trace not found")

// Reference types used by Jaeger in Span.References.
const (
	ChildOf     = "CHILD_OF"
	FollowsFrom = "FOLLOWS_FROM"
)

// Trace is one trace as returned by Jaeger's query API.
type Trace struct {
	TraceID string `json:"traceID"`
	Spans   []Span `json:"spans"`
	// Processes maps Span.ProcessID (p1, p2, ...) to the emitting process.
	Processes map[string]Process `json:"processes"`
}

// Process is the process (service) that emitted a span.
type Process struct {
	ServiceName string `json:"serviceName"`
}

// Span is one span of a Trace. Times are in microseconds.
type Span struct {
	TraceID       string      `json:"traceID"`
	SpanID        string      `json:"spanID"`
	OperationName string      `json:"operationName"`
	References    []Reference `json:"references"`
	// StartTime is in microseconds since the Unix epoch.
	StartTime int64 `json:"startTime"`
	// Duration is in microseconds.
	Duration  int64  `json:"duration"`
	ProcessID string `json:"processID"`
	Tags      []Tag  `json:"tags"`
}

// Reference links a span to another span: ChildOf or FollowsFrom.
type Reference struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

// Tag is a span attribute. Type is Jaeger's type name ("string", "int64",
// "float64", "bool", "binary"); Value is the decoded JSON value.
type Tag struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// ParentID returns the id of the span's parent within the same trace: its
// first ChildOf reference, else its first FollowsFrom reference, else "".
func (s Span) ParentID() string {
	for _, typ := range []string{ChildOf, FollowsFrom} {
		for _, r := range s.References {
			if r.RefType == typ && (r.TraceID == "" || r.TraceID == s.TraceID) {
				return r.SpanID
			}
		}
	}
	return ""
}

// ServiceName returns the name of the service that emitted s.
func (t Trace) ServiceName(s Span) string {
	if p, ok := t.Processes[s.ProcessID]; ok && p.ServiceName != "" {
		return p.ServiceName
	}
	return "unknown"
}

// response is the envelope of every Jaeger query API answer.
type response struct {
	Data   []Trace `json:"data"`
	Errors []struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	} `json:"errors"`
}

// Fetch gets the trace with the given id from the Jaeger query API at baseURL
// (for example http://127.0.0.1:16686). A nil client means
// http.DefaultClient. The error wraps ErrNotFound when Jaeger has no such
// trace.
func Fetch(ctx context.Context, client *http.Client, baseURL, traceID string) (Trace, error) {
	u := strings.TrimRight(baseURL, "/") + "/api/traces/" + url.PathEscape(traceID)
	resp, err := getJSON(ctx, client, u)
	if err != nil {
		return Trace{}, fmt.Errorf("fetch trace %s: %w", traceID, err)
	}
	if len(resp.Data) == 0 {
		return Trace{}, fmt.Errorf("fetch trace %s: no data: %w", traceID, ErrNotFound)
	}
	return resp.Data[0], nil
}

// FindByTag returns the ids (at most 20, newest first as Jaeger orders them)
// of traces that have a span of service with the tag tagKey=tagValue and
// that started within lookback before now. No match is not an error.
func FindByTag(ctx context.Context, client *http.Client, baseURL, service, tagKey, tagValue string, lookback time.Duration) ([]string, error) {
	if lookback <= 0 {
		return nil, fmt.Errorf("find traces by tag %s=%s: lookback must be positive, got %v", tagKey, tagValue, lookback)
	}
	tags, err := json.Marshal(map[string]string{tagKey: tagValue})
	if err != nil {
		return nil, fmt.Errorf("find traces by tag %s=%s: %w", tagKey, tagValue, err)
	}
	// Jaeger ignores lookback when searching (its UI sends it for display
	// only); the window is start..end in microseconds.
	end := time.Now()
	q := url.Values{
		"service":  {service},
		"tags":     {string(tags)},
		"lookback": {lookback.String()},
		"start":    {strconv.FormatInt(end.Add(-lookback).UnixMicro(), 10)},
		"end":      {strconv.FormatInt(end.UnixMicro(), 10)},
		"limit":    {"20"},
	}
	u := strings.TrimRight(baseURL, "/") + "/api/traces?" + q.Encode()
	resp, err := getJSON(ctx, client, u)
	if err != nil {
		return nil, fmt.Errorf("find traces of %s by tag %s=%s: %w", service, tagKey, tagValue, err)
	}
	var ids []string
	seen := make(map[string]bool)
	for _, t := range resp.Data {
		if t.TraceID != "" && !seen[t.TraceID] {
			seen[t.TraceID] = true
			ids = append(ids, t.TraceID)
		}
	}
	return ids, nil
}

// getJSON GETs u and decodes Jaeger's response envelope.
func getJSON(ctx context.Context, client *http.Client, u string) (response, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Accept", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return response{}, fmt.Errorf("read response: %w", err)
	}
	var r response
	jsonErr := json.Unmarshal(body, &r)
	if res.StatusCode != http.StatusOK {
		e := &statusError{status: res.Status, code: res.StatusCode, msg: strings.TrimSpace(string(body))}
		if jsonErr == nil && len(r.Errors) > 0 {
			e.msg, e.fromJaeger = r.Errors[0].Msg, true
		}
		if len(e.msg) > 200 {
			e.msg = e.msg[:200] + "..."
		}
		return response{}, e
	}
	if jsonErr != nil {
		return response{}, fmt.Errorf("decode response: %w", jsonErr)
	}
	return r, nil
}

// statusError is a non-200 answer. It matches ErrNotFound when Jaeger itself
// answered 404 (it does for an unknown trace id), not for any 404 page.
type statusError struct {
	status     string
	code       int
	msg        string
	fromJaeger bool
}

func (e *statusError) Error() string { return "unexpected status " + e.status + ": " + e.msg }

// Is reports whether e is Jaeger's "trace not found".
func (e *statusError) Is(target error) bool {
	return target == ErrNotFound && e.code == http.StatusNotFound && e.fromJaeger
}
