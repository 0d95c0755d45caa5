package relay_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/pkg/outbox"
	"github.com/sagabox/sagabox/pkg/relay"
)

// Environment of the crash test's child process (see runChildRelay).
const (
	envChild       = "RELAY_TEST_CHILD"
	envChildDB     = "RELAY_TEST_CHILD_DB"
	envChildBroker = "RELAY_TEST_CHILD_BROKER"
	envChildSlot   = "RELAY_TEST_CHILD_SLOT"
)

// runChildRelay runs the order-outbox relay under a Supervisor, as `sagabox
// relay` does, until the process is killed.
func runChildRelay() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := relay.LoadConnector(filepath.Join(connectorsDir, "order-outbox.json"))
	if err != nil {
		log.Error("load connector", "err", err)
		return 2
	}
	c.SlotName = os.Getenv(envChildSlot)
	sup, err := relay.NewSupervisor(relay.SupervisorConfig{
		Connectors: []relay.Connector{c},
		ConnString: func(relay.Connector) string { return os.Getenv(envChildDB) },
		Brokers:    []string{os.Getenv(envChildBroker)},
		Logger:     log,
		Relay:      relay.Config{StandbyTimeout: time.Second},
	})
	if err != nil {
		log.Error("create supervisor", "err", err)
		return 2
	}
	_ = sup.Run(context.Background())
	return 0
}

// TestRelaySurvivesCrash: a relay process killed with SIGKILL mid-stream
// loses nothing; its successor on the same slot delivers every row that
// committed (some possibly twice).
func TestRelaySurvivesCrash(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	slot := f.slot(t)
	col := f.consume(t, "credit-approval.request")
	spawn := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envChild+"=1", envChildDB+"="+f.dbURL, envChildBroker+"="+f.broker, envChildSlot+"="+slot)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start relay process: %v", err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		return cmd
	}

	var (
		mu       sync.Mutex
		inserted []string
	)
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(inserted)
	}
	ctx, stopWriting := context.WithCancel(context.Background())
	writerDone := make(chan error, 1)
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			events := make([]outbox.Event, 1+i%3) // transactions of one to three rows
			for j := range events {
				events[j] = event("credit-approval", fmt.Sprintf("saga-%d", i%7), "REQUEST")
			}
			err := pgx.BeginFunc(context.Background(), f.pool, func(tx pgx.Tx) error {
				return outbox.Write(context.Background(), tx, events...)
			})
			if err != nil {
				writerDone <- err
				return
			}
			mu.Lock()
			for _, e := range events {
				inserted = append(inserted, e.ID.String())
			}
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
		writerDone <- nil
	}()
	defer stopWriting()

	child := spawn()
	testenv.Eventually(t, 30*time.Second, func() bool { return len(col.records()) >= 150 }, "first process delivers")
	if err := child.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = child.Wait()
	_, atKill := col.ids()
	insertedAtKill := count()
	testenv.Eventually(t, 30*time.Second, func() bool { return count() >= insertedAtKill+200 }, "rows written while no relay runs")
	spawn()
	testenv.Eventually(t, 30*time.Second, func() bool { return len(col.records()) >= count()-50 && count() > insertedAtKill+400 },
		"second process catches up")
	stopWriting()
	if err := <-writerDone; err != nil {
		t.Fatalf("writer: %v", err)
	}
	total := count()
	mu.Lock()
	want := slices.Clone(inserted)
	mu.Unlock()
	testenv.Eventually(t, 30*time.Second, func() bool {
		ids, _ := col.ids()
		for _, id := range want {
			if ids[id] == 0 {
				return false
			}
		}
		return true
	}, "every inserted id delivered")
	ids, n := col.ids()
	t.Logf("inserted %d rows; consumed %d records (%d at the kill), %d distinct ids, %d duplicates",
		total, n, atKill, len(ids), n-len(ids))
	if len(ids) != total {
		t.Errorf("distinct ids = %d, want %d", len(ids), total)
	}
}

// proxy forwards TCP connections to target until frozen: then it stops
// moving bytes but keeps every connection open, like a client host that
// lost power (no FIN, no RST).
type proxy struct {
	ln     net.Listener
	target string
	frozen chan struct{}
	once   sync.Once
	mu     sync.Mutex
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, frozen: make(chan struct{})}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	return p
}

func (p *proxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		go p.pipe(out, in)
		go p.pipe(in, out)
	}
}

func (p *proxy) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		select {
		case <-p.frozen:
			return // swallow: the peer hears nothing more, the socket stays open
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) freeze() { p.once.Do(func() { close(p.frozen) }) }

// TestRelayTakesOverSlotOfDeadRelay: a relay whose client host went silent
// (its connection frozen mid-stream, so its walsender keeps the slot) does
// not block its successor: the new relay terminates that walsender after
// 2×StandbyTimeout of silence, logs it, and delivers what was written.
func TestRelayTakesOverSlotOfDeadRelay(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	slot := f.slot(t)
	c := loadConnector(t, "order-outbox")
	col := f.consume(t, "credit-approval.request")

	cfg, err := pgx.ParseConfig(f.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, fmt.Sprintf("%s:%d", cfg.Host, cfg.Port))
	viaProxy := *f
	viaProxy.dbURL = fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", cfg.User, cfg.Password, p.ln.Addr(), cfg.Database)
	dead := viaProxy.newRelay(t, c, slot)
	deadCtx, killDead := context.WithCancel(ctx)
	deadDone := make(chan error, 1)
	go func() { deadDone <- dead.Run(deadCtx) }()
	t.Cleanup(func() {
		killDead()
		<-deadDone
	})
	e1 := event("credit-approval", "saga-1", "REQUEST")
	write(t, ctx, f.pool, e1)
	testenv.Eventually(t, 20*time.Second, func() bool { return col.has(e1) }, "the first relay streams")

	// The walsender holding the slot for the first relay (which may be
	// between connections just after streaming starts).
	var pid int32
	testenv.Eventually(t, 10*time.Second, func() bool {
		var active *int32
		err := f.pool.QueryRow(ctx, `SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active)
		if err == nil && active != nil {
			pid = *active
		}
		return pid != 0
	}, "slot %s is not held", slot)
	p.freeze()
	e2 := event("credit-approval", "saga-2", "REQUEST")
	write(t, ctx, f.pool, e2)
	began := time.Now()
	start(t, f.newRelay(t, c, slot))
	testenv.Eventually(t, 30*time.Second, func() bool { return col.has(e2) }, "the successor delivers")
	t.Logf("successor delivered %s after the freeze", time.Since(began).Round(100*time.Millisecond))
	lines := f.logs.lines("replication slot taken over from a dead relay", fmt.Sprintf("pid=%d", pid))
	if len(lines) != 1 {
		t.Errorf("takeover log lines for walsender %d: %q, want one", pid, lines)
	}
	var alive bool
	if err := f.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)`, pid).Scan(&alive); err != nil {
		t.Fatal(err)
	}
	if alive {
		t.Errorf("walsender %d of the dead relay still runs", pid)
	}
}
