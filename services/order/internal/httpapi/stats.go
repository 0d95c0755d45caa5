package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/services/order/internal/app"
)

// statsResponse is GET /admin/sagas/stats: the sagas per status now, how
// many are stuck, and per bucket of the window the sagas started, succeeded
// and aborted, with the p50/p99 time from start to final status of those
// that ended in the window.
type statsResponse struct {
	At      string                `json:"at"`
	Window  string                `json:"window"`
	Bucket  string                `json:"bucket"`
	Now     map[saga.Status]int64 `json:"now"`
	Stuck   int64                 `json:"stuck"`
	Buckets []bucketResponse      `json:"buckets"`
	Ended   int64                 `json:"ended"`
	P50Ms   float64               `json:"p50Ms"`
	P99Ms   float64               `json:"p99Ms"`
}

type bucketResponse struct {
	Start     string `json:"start"`
	Started   int64  `json:"started"`
	Succeeded int64  `json:"succeeded"`
	Aborted   int64  `json:"aborted"`
}

// sagaStats serves GET /admin/sagas/stats?window=15m&bucket=1m (the
// defaults).
func (h handlers) sagaStats(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	window, bucket := 15*time.Minute, time.Minute
	var errs []string
	for key := range q {
		if key != "window" && key != "bucket" {
			errs = append(errs, fmt.Sprintf("unknown parameter %q (known: window, bucket)", key))
		}
	}
	for _, p := range []struct {
		key string
		dst *time.Duration
	}{{"window", &window}, {"bucket", &bucket}} {
		if v := q.Get(p.key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second {
				errs = append(errs, fmt.Sprintf("%s %q: want a duration of at least 1s, like 15m", p.key, v))
			}
			*p.dst = d
		}
	}
	if len(errs) > 0 {
		slices.Sort(errs)
		h.writeError(w, r, fmt.Errorf("%w: %s", app.ErrBadInput, strings.Join(errs, "; ")))
		return
	}
	st, err := h.app.SagaStats(r.Context(), window, bucket)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	resp := statsResponse{
		At: timestamp(st.At), Window: window.String(), Bucket: bucket.String(), Now: st.ByState, Stuck: st.Stuck,
		Buckets: make([]bucketResponse, len(st.Buckets)), Ended: st.Ended,
		P50Ms: float64(st.P50.Microseconds()) / 1000, P99Ms: float64(st.P99.Microseconds()) / 1000,
	}
	for i, b := range st.Buckets {
		resp.Buckets[i] = bucketResponse{Start: timestamp(b.Start), Started: b.Started, Succeeded: b.Succeeded, Aborted: b.Aborted}
	}
	platform.WriteJSON(w, http.StatusOK, resp)
}
