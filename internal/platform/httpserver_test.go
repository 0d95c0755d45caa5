package platform

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// serve runs srv on a free port of the loopback interface until the test
// ends and returns its address.
func serve(t *testing.T, srv *http.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// The limits are the documented ones (README, "Limits").
func TestDefaultHTTPLimits(t *testing.T) {
	t.Parallel()
	srv := NewHTTPServer(http.NotFoundHandler(), DefaultHTTPLimits())
	got := [5]any{srv.MaxHeaderBytes, srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout}
	want := [5]any{16 << 10, 5 * time.Second, 15 * time.Second, 15 * time.Second, 60 * time.Second}
	if got != want {
		t.Errorf("server limits %v, want %v", got, want)
	}
	if l := DefaultHTTPLimits(); l.MaxInFlight != 128 || l.RetryAfter != time.Second || l.HandlerTimeout != 10*time.Second {
		t.Errorf("in flight %d, retry after %s, handler timeout %s; want 128, 1s, 10s", l.MaxInFlight, l.RetryAfter, l.HandlerTimeout)
	}
}

// Headers over MaxHeaderBytes get 431 and never reach the handler; headers
// under it do.
func TestHeaderLimit(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	addr := serve(t, NewHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		WriteJSON(w, http.StatusOK, map[string]string{})
	}), DefaultHTTPLimits()))
	send := func(headerBytes int) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/x", nil)
		req.Header.Set("X-Big", strings.Repeat("a", headerBytes))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send(8 << 10); code != http.StatusOK {
		t.Errorf("8 KiB of headers: %d, want 200", code)
	}
	if code := send(32 << 10); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("32 KiB of headers: %d, want 431", code)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want once (not for the 431)", n)
	}
}

// readClosed reads conn until the server closes it and returns what it
// read and how long that took; it fails the test after bound.
func readClosed(t *testing.T, conn net.Conn, bound time.Duration) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	if err := conn.SetReadDeadline(start.Add(bound)); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open past %s", bound)
	}
	return string(b), time.Since(start)
}

// A client too slow with its headers, its body, or silent on a keep-alive
// connection is disconnected at the timeouts; a handler slower than
// HandlerTimeout has its context cancelled and the client gets 503.
func TestServerTimeouts(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	limits := DefaultHTTPLimits()
	limits.ReadHeaderTimeout, limits.ReadTimeout, limits.IdleTimeout = timeout, 2*timeout, timeout
	limits.HandlerTimeout, limits.WriteTimeout = timeout, 3*timeout
	bodyErr, slowDone := make(chan error, 1), make(chan error, 1)
	addr := serve(t, NewHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/body":
			_, err := io.ReadAll(r.Body)
			bodyErr <- err
		case "/slow":
			<-r.Context().Done() // a database call waiting on a lock
			slowDone <- r.Context().Err()
			return
		}
		WriteJSON(w, http.StatusOK, map[string]string{})
	}), limits))
	dial := func() net.Conn {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}

	t.Run("headers", func(t *testing.T) {
		conn := dial()
		_, _ = io.WriteString(conn, "GET /x HTTP/1.1\r\nHost: x\r\n") // and nothing more
		if got, took := readClosed(t, conn, 10*timeout); got != "" || took < timeout*9/10 {
			t.Errorf("closed after %s with %q; want closed without an answer after %s", took, got, timeout)
		}
	})
	t.Run("body", func(t *testing.T) {
		conn := dial()
		_, _ = io.WriteString(conn, "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":")
		if _, took := readClosed(t, conn, 20*timeout); took < timeout {
			t.Errorf("closed after %s; want after the read timeout %s", took, 2*timeout)
		}
		var ne net.Error
		if err := <-bodyErr; !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("the handler read the body with %v, want a timeout", err)
		}
	})
	t.Run("idle", func(t *testing.T) {
		conn := dial()
		_, _ = io.WriteString(conn, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("first request: %v %v", resp, err)
		}
		resp.Body.Close()
		if got, took := readClosed(t, conn, 10*timeout); got != "" || took < timeout*9/10 {
			t.Errorf("idle connection closed after %s with %q; want after %s", took, got, timeout)
		}
	})
	t.Run("slow handler", func(t *testing.T) {
		start := time.Now()
		resp, err := http.Get("http://" + addr + "/slow")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]string
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusServiceUnavailable ||
			resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(body["error"], "longer than 300ms") {
			t.Errorf("slow handler: %d %s %v (%v); want 503 with a JSON error", resp.StatusCode, resp.Header.Get("Content-Type"), body, err)
		}
		if took := time.Since(start); took < timeout*9/10 || took > 10*timeout {
			t.Errorf("answered after %s; want at the handler timeout %s", took, timeout)
		}
		if err := <-slowDone; !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("the handler's context ended with %v, want the deadline", err)
		}
	})
}

// Past MaxInFlight requests in progress, one more gets 503 with
// Retry-After and a JSON error at once, and the handler never sees it;
// /healthz is always served; once a slot is free, requests go through.
func TestLimitInFlight(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{}, 3)
	var calls atomic.Int32
	h := LimitInFlight(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Path == "/block" {
			entered <- struct{}{}
			<-release
		}
		WriteJSON(w, http.StatusOK, map[string]string{})
	}), 2, 1500*time.Millisecond)
	srv := &http.Server{Handler: h}
	addr := serve(t, srv)
	get := func(path string) (*http.Response, map[string]string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Error(err)
			return nil, nil
		}
		defer resp.Body.Close()
		var body map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp, body
	}
	done := make(chan int, 2)
	for range 2 {
		go func() {
			resp, _ := get("/block")
			if resp != nil {
				done <- resp.StatusCode
			}
		}()
	}
	<-entered
	<-entered
	resp, body := get("/orders")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "2" || body["error"] == "" {
		t.Errorf("third request: %d, Retry-After %q, body %v; want 503, 2, an error", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if resp, _ := get("/healthz"); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz while full: %d, want 200", resp.StatusCode)
	}
	close(release)
	if diff := cmp.Diff([]int{200, 200}, []int{<-done, <-done}); diff != "" {
		t.Errorf("blocked requests (-want +got):\n%s", diff)
	}
	if resp, _ := get("/orders"); resp.StatusCode != http.StatusOK {
		t.Errorf("after the slots freed: %d, want 200", resp.StatusCode)
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("handler called %d times, want 4 (two blocked, /healthz, the last): never for the 503", n)
	}
}
