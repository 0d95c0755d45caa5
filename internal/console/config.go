package console

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
)

// Config is the console's configuration, from its environment.
type Config struct {
	HTTPAddr string // HTTP_ADDR
	// OrderURLs are the base URLs of every instance of the order service,
	// the orchestrator (ORDER_URLS, comma-separated). A request goes to the
	// first instance that can be reached; all of them are checked for
	// health.
	OrderURLs []string
	// Participants are the participant services by name, each with the
	// base URLs of its instances (PARTICIPANT_URLS:
	// "customer=http://a:8081,http://b:8081;payment=http://c:8082"). The
	// console asks each which steps it serves (GET /steps).
	Participants []Participant
	// Token is the admin bearer token the console reads the admin APIs
	// with (CONSOLE_TOKEN; the sagas, their history, parked messages). The
	// operator actions never use it: each asks for the operator's own
	// token. Empty: the pages that need it say so.
	Token string
	// JaegerQueryURL is Jaeger's query API (JAEGER_QUERY_URL, e.g.
	// http://localhost:16686); empty: no traces.
	JaegerQueryURL string
	// JaegerUIURL is where a person opens Jaeger's UI (JAEGER_UI_URL); a
	// saga page links its trace there. Empty: no link.
	JaegerUIURL string
	// Hosts are the host names the console answers for (CONSOLE_HOSTS,
	// comma-separated; default localhost, 127.0.0.1 and ::1, plus the host
	// of HTTP_ADDR): a request naming any other host in its Host header is
	// refused, so that a web page whose name an attacker points at this
	// machine (DNS rebinding) cannot read or drive the console.
	Hosts []string
}

// LoadConfig reads the environment through getenv, with defaults that work
// with `make run`, and reports every invalid value at once.
func LoadConfig(getenv func(string) string) (Config, error) {
	c := Config{
		HTTPAddr:  or(getenv("HTTP_ADDR"), "127.0.0.1:8070"),
		OrderURLs: []string{"http://localhost:8080"},
		Participants: []Participant{{Name: "customer", URLs: []string{"http://localhost:8081"}},
			{Name: "payment", URLs: []string{"http://localhost:8082"}}},
		Token: strings.TrimSpace(getenv("CONSOLE_TOKEN")),
		Hosts: []string{"localhost", "127.0.0.1", "::1"},
	}
	var errs []error
	if host, _, err := net.SplitHostPort(c.HTTPAddr); err == nil && host != "" && host != "0.0.0.0" && host != "::" &&
		!slices.Contains(c.Hosts, strings.ToLower(host)) {
		c.Hosts = append(c.Hosts, strings.ToLower(host))
	}
	if v := getenv("CONSOLE_HOSTS"); v != "" {
		c.Hosts = nil
		for h := range strings.SplitSeq(v, ",") {
			h = strings.ToLower(strings.Trim(strings.TrimSpace(h), "[]"))
			if h == "" || strings.ContainsAny(h, "/:@ ") && net.ParseIP(h) == nil {
				errs = append(errs, fmt.Errorf("CONSOLE_HOSTS: %q is not a host name", h))
				continue
			}
			c.Hosts = append(c.Hosts, h)
		}
	}
	if v := getenv("ORDER_URLS"); v != "" {
		var err error
		if c.OrderURLs, err = urlList(v); err != nil {
			errs = append(errs, fmt.Errorf("ORDER_URLS: %w", err))
		}
	}
	if v := getenv("PARTICIPANT_URLS"); v != "" {
		c.Participants = nil
		for item := range strings.SplitSeq(v, ";") {
			name, list, ok := strings.Cut(strings.TrimSpace(item), "=")
			urls, err := urlList(list)
			if !ok || name == "" || err != nil {
				errs = append(errs, fmt.Errorf("PARTICIPANT_URLS: %q: want name=url,url (%v)", item, err))
				continue
			}
			c.Participants = append(c.Participants, Participant{Name: name, URLs: urls})
		}
	}
	for _, u := range []struct {
		key string
		dst *string
	}{{"JAEGER_QUERY_URL", &c.JaegerQueryURL}, {"JAEGER_UI_URL", &c.JaegerUIURL}} {
		if v := strings.TrimRight(strings.TrimSpace(getenv(u.key)), "/"); v != "" {
			if err := checkURL(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", u.key, err))
			}
			*u.dst = v
		}
	}
	return c, errors.Join(errs...)
}

// Participant is a participant service and its instances.
type Participant struct {
	Name string
	URLs []string
}

// urlList reads a comma-separated list of base URLs.
func urlList(v string) ([]string, error) {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		if err := checkURL(item); err != nil {
			return nil, err
		}
		out = append(out, strings.TrimRight(item, "/"))
	}
	if len(out) == 0 {
		return nil, errors.New("no URL")
	}
	return out, nil
}

func checkURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", v)
	}
	return nil
}

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}
