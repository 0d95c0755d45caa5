package deploy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeConnect is the part of Kafka Connect's REST API register.sh uses.
type fakeConnect struct {
	conflicts   int // answer the first PUTs with 409, as a rebalancing worker does
	putStatus   int
	state       string
	mu          sync.Mutex
	registered  map[string]json.RawMessage
	contentType map[string]string
}

func newFakeConnect(putStatus int, state string) *fakeConnect {
	return &fakeConnect{putStatus: putStatus, state: state, registered: map[string]json.RawMessage{}, contentType: map[string]string{}}
}

func (f *fakeConnect) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/connectors":
		io.WriteString(w, "[]")
	case r.Method == http.MethodPut && len(parts) == 3 && parts[0] == "connectors" && parts[2] == "config":
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		if f.conflicts > 0 {
			f.conflicts--
			f.mu.Unlock()
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `{"error_code":409,"message":"Cannot complete request momentarily due to stale configuration"}`)
			return
		}
		f.registered[parts[1]] = body
		f.contentType[parts[1]] = r.Header.Get("Content-Type")
		f.mu.Unlock()
		w.WriteHeader(f.putStatus)
		if f.putStatus >= 300 {
			io.WriteString(w, `{"error_code":400,"message":"Connector configuration is invalid"}`)
			return
		}
		fmt.Fprintf(w, `{"name":%q,"config":{},"tasks":[],"type":"source"}`, parts[1])
	case r.Method == http.MethodGet && len(parts) == 3 && parts[2] == "status":
		fmt.Fprintf(w, `{"name":%q,"connector":{"state":"RUNNING","worker_id":"connect:8083"},
			"tasks":[{"id":0,"state":%q,"worker_id":"connect:8083"}],"type":"source"}`, parts[1], f.state)
	default:
		http.NotFound(w, r)
	}
}

func runRegister(t *testing.T, f *fakeConnect) (stderr string, err error) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed: the register script needs it (the Connect image has it)")
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	dir := root(t)
	cmd := exec.Command("sh", filepath.Join(dir, "deploy", "connect", "register.sh"))
	cmd.Env = append(os.Environ(),
		"CONNECT_URL="+srv.URL,
		"CONNECTORS_DIR="+filepath.Join(dir, "debezium", "connectors"),
		"TIMEOUT_SECONDS=4",
		"TMPDIR="+t.TempDir(),
	)
	var buf strings.Builder
	cmd.Stderr = &buf
	err = cmd.Run()
	return buf.String(), err
}

func TestRegisterScript(t *testing.T) {
	t.Parallel()
	f := newFakeConnect(http.StatusCreated, "RUNNING")
	f.conflicts = 1
	stderr, err := runRegister(t, f)
	if err != nil {
		t.Fatalf("register.sh: %v\n%s", err, stderr)
	}
	for name, cfg := range connectorFiles(t) {
		body, ok := f.registered[name]
		if !ok {
			t.Errorf("connector %s was not PUT", name)
			continue
		}
		var got map[string]string
		if err := json.Unmarshal(body, &got); err != nil {
			t.Errorf("%s: body is not a config map: %v", name, err)
		}
		if diff := cmp.Diff(cfg, got); diff != "" {
			t.Errorf("%s: PUT body differs from the file (-file +sent):\n%s", name, diff)
		}
		if ct := f.contentType[name]; ct != "application/json" {
			t.Errorf("%s: Content-Type %q", name, ct)
		}
	}
	if len(f.registered) != len(wantConnectors) {
		t.Errorf("registered %d connectors, want %d", len(f.registered), len(wantConnectors))
	}
}

func TestRegisterScriptFailsLoudly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, want string
		putStatus  int
		state      string
	}{
		{"rejected config", "HTTP 400", http.StatusBadRequest, "RUNNING"},
		{"failed task", "FAILED", http.StatusOK, "FAILED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stderr, err := runRegister(t, newFakeConnect(tc.putStatus, tc.state))
			if err == nil {
				t.Fatalf("register.sh succeeded; stderr:\n%s", stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr does not say %q:\n%s", tc.want, stderr)
			}
		})
	}
}
