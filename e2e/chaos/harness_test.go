// Package chaos_test kills the components of a running local system for
// real — SIGKILL of service instances, the relay, the broker and the whole
// `sagabox up`, immediate-mode stops of Postgres — while orders are placed,
// and then checks that every saga ended and the money is right. It also
// scans such a system, every database, topic, log line and file, for card
// numbers in clear (cardscan_test.go).
//
// It builds the sagabox binary once (without the race detector: the system
// under test runs as it would for a user) and runs `sagabox up` as a child
// process on free ports and a temporary data directory.
package chaos_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/pgcluster"
	"github.com/sagabox/sagabox/internal/supervisor"
	"github.com/sagabox/sagabox/internal/testenv"
)

var sagaboxBin string // built by TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sagabox-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sagaboxBin = filepath.Join(dir, "sagabox")
	build := exec.Command("go", "build", "-o", sagaboxBin, "../../cmd/sagabox")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos: build sagabox:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// stack is a `sagabox up` process and what the test needs to reach it.
type stack struct {
	t         testing.TB
	dataDir   string
	args      []string
	pgPort    int
	orderURLs []string
	runDir    string

	mu   sync.Mutex
	cmd  *exec.Cmd
	logs *os.File // everything the stack printed, across restarts
	up   chan struct{}
}

func freePort(t testing.TB) int {
	t.Helper()
	p, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startStack runs `sagabox up` with instances of each service, on free
// ports; ports of instance k are 10(k-1) higher.
func startStack(t testing.TB, instances int) *stack {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "data")
	s := &stack{t: t, dataDir: dataDir, pgPort: freePort(t), runDir: filepath.Join(dataDir, "run")}
	orderPort := freePort(t)
	s.args = []string{"up", "-data", dataDir, "-pg-port", strconv.Itoa(s.pgPort), "-kafka-port", strconv.Itoa(freePort(t)),
		"-order-addr", "127.0.0.1:" + strconv.Itoa(orderPort),
		"-customer-addr", "127.0.0.1:" + strconv.Itoa(freePort(t)), "-payment-addr", "127.0.0.1:" + strconv.Itoa(freePort(t)),
		"-console-addr", "127.0.0.1:" + strconv.Itoa(freePort(t)),
		"-relay-metrics-addr", "127.0.0.1:" + strconv.Itoa(freePort(t)),
		"-broker-metrics-addr", "127.0.0.1:" + strconv.Itoa(freePort(t)),
		"-connectors", "../../debezium/connectors", "-jaeger", "none",
		"-instances", fmt.Sprintf("order=%d,customer=%d,payment=%d", instances, instances, instances)}
	for k := range instances {
		s.orderURLs = append(s.orderURLs, fmt.Sprintf("http://127.0.0.1:%d", orderPort+10*k))
	}
	logs, err := os.Create(filepath.Join(t.TempDir(), "stack.log"))
	if err != nil {
		t.Fatal(err)
	}
	s.logs = logs
	t.Cleanup(func() {
		s.stop()
		_ = pgcluster.StopDir(context.Background(), filepath.Join(dataDir, "pg"))
		logs.Close()
		if t.Failed() {
			t.Logf("stack output: %s", logs.Name())
		}
	})
	s.start()
	return s
}

// start starts `sagabox up` and waits until it says it is up.
func (s *stack) start() {
	s.t.Helper()
	cmd := exec.Command(sagaboxBin, s.args...)
	cmd.Stdout = s.logs
	stderr, err := cmd.StderrPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	up := make(chan struct{})
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		closed := false
		for sc.Scan() {
			fmt.Fprintln(s.logs, "up         | "+sc.Text())
			if !closed && strings.Contains(sc.Text(), "sagabox is up") {
				close(up)
				closed = true
			}
		}
	}()
	s.mu.Lock()
	s.cmd, s.up = cmd, up
	s.mu.Unlock()
	select {
	case <-up:
	case <-time.After(3 * time.Minute):
		s.t.Fatalf("sagabox up did not come up (output in %s)", s.logs.Name())
	}
}

// stop stops the stack as Ctrl-C does.
func (s *stack) stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// killStack kills `sagabox up` (its children die with it) and Postgres, all
// at once, as a power loss would, then starts the stack again.
func (s *stack) killStack() {
	s.t.Helper()
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if err := pgcluster.CrashDir(context.Background(), filepath.Join(s.dataDir, "pg")); err != nil {
		s.t.Logf("crash postgres: %v", err)
	}
	s.start()
}

// kill SIGKILLs component name (its supervisor restarts it).
func (s *stack) kill(name string) error {
	pid, err := supervisor.ReadPid(s.runDir, name)
	if err != nil {
		return err
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}

// crashPostgres stops Postgres in immediate mode (the stack's watchdog
// starts it again).
func (s *stack) crashPostgres() error {
	return pgcluster.CrashDir(context.Background(), filepath.Join(s.dataDir, "pg"))
}

// db opens a superuser pool on database name of the stack's cluster.
func (s *stack) db(name string) *pgxpool.Pool {
	s.t.Helper()
	pw, err := pgcluster.ReadPassword(filepath.Join(s.dataDir, "postgres-password"))
	if err != nil {
		s.t.Fatal(err)
	}
	pool, err := pgxpool.New(context.Background(), pgcluster.AdminURL(s.pgPort, pw, name))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(pool.Close)
	return pool
}

// waitDB waits until Postgres answers (after a crash, the watchdog needs a
// moment).
func (s *stack) waitDB(pool *pgxpool.Pool) {
	s.t.Helper()
	testenv.Eventually(s.t, 60*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return pool.Ping(ctx) == nil
	}, "postgres never came back")
}

// order is one order to place.
type order struct {
	CustomerID int64  `json:"customerId"`
	ItemID     int64  `json:"itemId"`
	Quantity   int    `json:"quantity"`
	PaymentDue int64  `json:"paymentDue"`
	Card       string `json:"creditCardNo"`
	cancel     bool   // cancelled once accepted
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// place posts o to the order service at url; it returns the order's id
// when it was accepted for processing (202), 0 otherwise. A failed POST may
// still have created the order: the checks read the databases, not this
// answer.
func place(url string, o order) int64 {
	body, _ := json.Marshal(o)
	resp, err := httpClient.Post(url+"/orders", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var placed struct {
		OrderID int64 `json:"orderId"`
	}
	if resp.StatusCode != http.StatusAccepted || json.NewDecoder(resp.Body).Decode(&placed) != nil {
		return 0
	}
	return placed.OrderID
}

// cancel posts the cancellation of order id to the order service at url;
// it reports whether the service answered (any status: the checks read the
// databases).
func cancel(url string, id int64) bool {
	resp, err := httpClient.Post(fmt.Sprintf("%s/orders/%d/cancel", url, id), "application/json", nil)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode < 500
}
