package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// upstream is one service, reached at any of its instances.
type upstream struct {
	name string
	urls []string
	http *http.Client
}

// apiError is a service's answer other than 2xx: its status and its
// {"error": …} message.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d: %s", e.Status, e.Message) }

// statusOf returns the HTTP status of an apiError, 0 for another error.
func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// header is one request header of call.
type header struct{ key, value string }

// call sends a request with a JSON body (nil: none), the bearer token
// (empty: none) and headers to the first instance that answers, and decodes
// a JSON answer into out (nil: ignored). An instance to which no
// connection could be made is skipped; any other failure is final, so that
// a request that may have reached an instance (a timeout, a connection
// lost mid-way) is never sent to a second one: an order would be placed
// twice. An answer, whatever its status, is final.
func (u upstream) call(ctx context.Context, method, path, token string, body, out any, headers ...header) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("%s %s: encode body: %w", method, path, err)
		}
	}
	var errs []error
	for _, base := range u.urls {
		req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(payload))
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for _, h := range headers {
			req.Header.Set(h.key, h.value)
		}
		resp, err := u.http.Do(req)
		if err != nil && notConnected(err) {
			errs = append(errs, err)
			continue
		}
		if err != nil {
			return fmt.Errorf("%s service: %w", u.name, err)
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s %s%s: read answer: %w", method, base, path, err)
		}
		if resp.StatusCode/100 != 2 {
			var e struct {
				Error string `json:"error"`
			}
			if json.Unmarshal(raw, &e) != nil || e.Error == "" {
				e.Error = strings.TrimSpace(string(raw))
			}
			return &apiError{Status: resp.StatusCode, Message: e.Error}
		}
		if out != nil {
			if err := json.Unmarshal(raw, out); err != nil {
				return fmt.Errorf("%s %s%s: decode answer: %w", method, base, path, err)
			}
		}
		return nil
	}
	return fmt.Errorf("%s service unreachable: %w", u.name, errors.Join(errs...))
}

// notConnected reports a request that never reached its instance: no
// connection could be made (refused, no route, the name did not resolve).
func notConnected(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return errors.As(err, &dns) || errors.As(err, &op) && op.Op == "dial"
}

// health checks every instance's /healthz.
func (u upstream) health(ctx context.Context) []instanceHealth {
	out := make([]instanceHealth, len(u.urls))
	for i, base := range u.urls {
		out[i] = instanceHealth{URL: base}
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
		if err == nil {
			var resp *http.Response
			if resp, err = u.http.Do(req); err == nil {
				resp.Body.Close()
				out[i].OK = resp.StatusCode == http.StatusOK
			}
		}
		cancel()
	}
	return out
}

type instanceHealth struct {
	URL string
	OK  bool
}
