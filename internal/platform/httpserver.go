package platform

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
)

// HTTPLimits bound what clients can make a service's HTTP server hold:
// memory for headers, connections kept open by slow or idle clients, and
// requests in progress at once. Request bodies are bounded by the
// handlers that read them (http.MaxBytesReader: 64 KiB for the order and
// admin APIs, 16 KiB for the parked-message API; 413 beyond).
type HTTPLimits struct {
	// MaxHeaderBytes bounds the request line and headers; a request with
	// more gets 431 Request Header Fields Too Large. (net/http reads 4 KiB
	// past it before it refuses.)
	MaxHeaderBytes int
	// ReadHeaderTimeout is how long a client may take to send its headers,
	// ReadTimeout its whole request; a connection past either is closed.
	// IdleTimeout closes a keep-alive connection that sends nothing.
	ReadHeaderTimeout, ReadTimeout, IdleTimeout time.Duration
	// HandlerTimeout bounds a handler: past it the request's context is
	// cancelled (its database work with it) and the client gets 503 with
	// {"error": …}. WriteTimeout, longer, bounds the whole response: a
	// connection still writing past it is closed.
	HandlerTimeout, WriteTimeout time.Duration
	// MaxInFlight bounds the requests being handled at once; one more gets
	// 503 Service Unavailable with Retry-After (RetryAfter, in whole
	// seconds) at once, before any handler runs. /healthz is not counted:
	// a busy service is not an unhealthy one.
	MaxInFlight int
	RetryAfter  time.Duration
}

// DefaultHTTPLimits are the limits of every service: 16 KiB of headers
// (requests of this API carry a few hundred bytes; a bearer token is under
// 100), headers within 5 s and a whole request within 15 s (the largest
// body is 64 KiB), 10 s for a handler (it runs one database transaction of
// a few milliseconds; 10 s means the database is stuck) and 15 s for the
// response, 60 s idle keep-alive, and 128 requests at once: the database
// pool serves 4 to 8 connections (pgxpool's default), so a longer queue
// only adds latency; Retry-After 1 s.
func DefaultHTTPLimits() HTTPLimits {
	return HTTPLimits{
		MaxHeaderBytes:    16 << 10,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		HandlerTimeout:    10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxInFlight:       128,
		RetryAfter:        time.Second,
	}
}

// NewHTTPServer returns a server for h with limits l (its Addr and
// BaseContext are the caller's to set).
func NewHTTPServer(h http.Handler, l HTTPLimits) *http.Server {
	return &http.Server{
		Handler:           LimitInFlight(timeoutHandler(h, l.HandlerTimeout), l.MaxInFlight, l.RetryAfter),
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
	}
}

// timeoutHandler is http.TimeoutHandler answering {"error": …} as JSON.
func timeoutHandler(h http.Handler, d time.Duration) http.Handler {
	body, _ := json.Marshal(map[string]string{"error": "the request took longer than " + d.String()})
	th := http.TimeoutHandler(h, d, string(body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Kept on a timeout; a handler that answers sets its own.
		w.Header().Set("Content-Type", "application/json")
		th.ServeHTTP(w, r)
	})
}

// LimitInFlight serves at most limit requests at once through h; the others
// get 503 with {"error": …} and Retry-After at once, and h never sees them.
// Requests for /healthz are always served.
func LimitInFlight(h http.Handler, limit int, retryAfter time.Duration) http.Handler {
	slots := make(chan struct{}, limit)
	seconds := strconv.Itoa(max(1, int(retryAfter.Round(time.Second)/time.Second)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			h.ServeHTTP(w, r)
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			w.Header().Set("Retry-After", seconds)
			WriteError(w, http.StatusServiceUnavailable, "too many requests in progress; retry later")
			return
		}
		defer func() { <-slots }()
		h.ServeHTTP(w, r)
	})
}

// Router is a service's router: server spans named by route, GET /healthz
// served by health, JSON errors for unknown routes and methods.
func Router(health http.Handler) chi.Router {
	r := chi.NewRouter()
	r.Use(NameSpanByRoute)
	r.Method(http.MethodGet, "/healthz", health)
	jsonErrors(r)
	return r
}

// jsonErrors answers unknown routes (404) and methods (405) of r with
// {"error": ...}.
func jsonErrors(r chi.Router) {
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) { WriteError(w, http.StatusNotFound, "no such route") })
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		WriteError(w, http.StatusMethodNotAllowed, "method not allowed")
	})
}
