// Package console is the dashboard of the local system and of the Docker
// one: server-rendered pages (html/template, embedded) over the services'
// APIs and Jaeger's query API, with a little JavaScript for live updates and
// the operator's dialogs. It holds no state of its own and talks to no
// database: every number it shows comes from a service's API.
package console

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sagabox/sagabox/api"
	"github.com/sagabox/sagabox/internal/metrics"
	"github.com/sagabox/sagabox/internal/platform"
)

//go:embed templates static
var assets embed.FS

// Server is the console's HTTP handler.
type Server struct {
	cfg          Config
	log          *slog.Logger
	order        api.Client
	participants []api.Client
	steps        stepOwners
	jaeger       *http.Client
	pages        map[string]*template.Template
	failures     *prometheus.CounterVec
}

// New builds the console over cfg; reg receives its metrics.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	client := &http.Client{Timeout: 3 * time.Second}
	s := &Server{
		cfg: cfg, log: log, jaeger: client,
		order: api.Client{Name: "order", URLs: cfg.OrderURLs, Token: cfg.Token, HTTP: client},
		steps: stepOwners{owners: map[string]int{}},
		pages: map[string]*template.Template{},
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Name: "console_upstream_failures_total",
			Help: "Calls of the console to a service or Jaeger that failed (unreachable or 5xx).",
		}, []string{"upstream"}),
	}
	for _, p := range cfg.Participants {
		s.participants = append(s.participants, api.Client{Name: p.Name, URLs: p.URLs, Token: cfg.Token, HTTP: client})
	}
	reg.MustRegister(s.failures)
	for _, page := range []string{"overview", "sagas", "saga", "parked", "place"} {
		t, err := template.New(page).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", page, err)
		}
		s.pages[page] = t
	}
	return s, nil
}

// Routes returns the console's router; metrics serves GET /metrics.
func (s *Server) Routes(metricsHandler http.Handler) http.Handler {
	r := chi.NewRouter()
	r.Use(s.allowHosts, securityHeaders)
	r.Get("/", s.overview)
	r.Get("/sagas", s.sagaList)
	r.Get("/sagas/{id}", s.sagaPage)
	r.Get("/sagas/{id}/trace", s.sagaTrace)
	r.Post("/sagas/{id}/{action:abort|retry|compensate}", s.sagaAction)
	r.Get("/parked", s.parkedPage)
	r.Post("/parked/{service}/replay", s.replayParked)
	r.Post("/parked/{service}/{pid}/replay", s.replayParked)
	r.Get("/place", s.placePage)
	r.Post("/orders", s.placeOrder)
	r.Post("/orders/{id}/cancel", s.cancelOrder)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		platform.WriteJSON(w, http.StatusOK, map[string]string{"console": "ok"})
	})
	r.Method(http.MethodGet, "/metrics", metricsHandler)
	static, _ := fs.Sub(assets, "static") // the embedded directory exists
	r.Handle("/static/*", http.StripPrefix("/static/", http.FileServerFS(static)))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.render(w, r, http.StatusNotFound, "overview", page{Title: "Not found", Error: "No such page: " + r.URL.Path})
	})
	return r
}

// allowHosts refuses a request whose Host header names a host the console
// does not answer for (Config.Hosts): what a page of another site sends
// after DNS rebinding.
func (s *Server) allowHosts(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.ToLower(strings.Trim(host, "[]"))
		if !slices.Contains(s.cfg.Hosts, host) {
			s.log.WarnContext(r.Context(), "request for another host refused", "host", r.Host, "remote", r.RemoteAddr)
			platform.WriteError(w, http.StatusMisdirectedRequest, "this console does not answer for host "+strconv.Quote(r.Host))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// securityHeaders: no framing, no sniffing, scripts and style sheets only
// from the console itself (inline style attributes place the waterfall's
// bars; their values are numbers).
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// page is what every template gets: the layout's fields and the page's
// own data.
type page struct {
	Title    string
	Nav      string
	Done     string // a flash message: the action worked
	Error    string // a flash message, or why the page is incomplete
	Fragment bool   // only the live part, for the JavaScript refresh
	NoToken  bool   // the console has no token to read the admin APIs
	JaegerUI string
	Data     any
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, name string, p page) {
	q := r.URL.Query()
	if p.Done == "" {
		p.Done = q.Get("done")
	}
	if p.Error == "" {
		p.Error = q.Get("error")
	}
	p.Fragment = q.Get("fragment") == "1"
	p.NoToken = s.cfg.Token == ""
	p.JaegerUI = s.cfg.JaegerUIURL
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	tmpl := "layout"
	if p.Fragment {
		tmpl = "live"
	}
	if err := s.pages[name].ExecuteTemplate(w, tmpl, p); err != nil {
		s.log.ErrorContext(r.Context(), "render page", "page", name, "err", err)
	}
}

// services are the order service, then the participants.
func (s *Server) services() []api.Client { return append([]api.Client{s.order}, s.participants...) }

// service returns the service called name.
func (s *Server) service(name string) (api.Client, bool) {
	for _, c := range s.services() {
		if c.Name == name {
			return c, true
		}
	}
	return api.Client{}, false
}

// as returns c calling with the operator's own token instead of the
// console's.
func as(c api.Client, token string) api.Client {
	c.Token = token
	return c
}

// failed counts and logs an upstream failure, and returns what to show.
func (s *Server) failed(ctx context.Context, upstream string, err error) string {
	if code := api.StatusOf(err); code == 0 || code >= 500 {
		s.failures.WithLabelValues(upstream).Inc()
		s.log.WarnContext(ctx, "upstream call failed", "upstream", upstream, "err", err)
	}
	return err.Error()
}

// redirect answers a form POST with 303 to path, with a flash message.
func redirect(w http.ResponseWriter, r *http.Request, path, key, msg string) {
	http.Redirect(w, r, path+"?"+url.Values{key: {msg}}.Encode(), http.StatusSeeOther)
}

// Serve runs the console's HTTP server on cfg.HTTPAddr until ctx ends.
func Serve(ctx context.Context, cfg Config, h http.Handler, log *slog.Logger) error {
	return platform.Serve(ctx, platform.Config{HTTPAddr: cfg.HTTPAddr}, h, log)
}

// Run is `sagabox console`: the configuration from getenv, JSON logs to
// stdout, the server until ctx ends.
func Run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := LoadConfig(getenv)
	if err != nil {
		return fmt.Errorf("console configuration: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(stdout, nil)).With("service", "console")
	if cfg.Token == "" {
		log.WarnContext(ctx, "CONSOLE_TOKEN is not set: the saga pages cannot read the admin API")
	}
	reg := metrics.NewRegistry()
	srv, err := New(cfg, log, reg)
	if err != nil {
		return err
	}
	log.InfoContext(ctx, "console starting", "orders", cfg.OrderURLs, "participants", cfg.Participants, "jaeger", cfg.JaegerQueryURL)
	return Serve(ctx, cfg, srv.Routes(metrics.Handler(reg)), log)
}

func trimReason(v string) string { return strings.TrimSpace(v) }
