package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/internal/pgcluster"
)

// system is a `sagabox up` process, started as `make run` starts it (fsync
// on), and the way to reach its parts.
type system struct {
	cmd                                        *exec.Cmd
	dataDir                                    string
	pgPort                                     int
	orderURL, customerURL, paymentURL, console string
	brokers                                    []string
	logs                                       *os.File
}

// startSystem builds nothing: bin is the sagabox binary. Tracing is on when
// jaeger names the Jaeger binary, off when it is "none".
func startSystem(ctx context.Context, bin, dataDir, jaeger string, env []string, extra ...string) (*system, error) {
	ports := make([]int, 8)
	for i := range ports {
		p, err := pgcluster.FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	pgPort, kafkaPort := ports[0], ports[1]
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	s := &system{dataDir: dataDir, pgPort: pgPort, orderURL: "http://" + addr(2), customerURL: "http://" + addr(3),
		paymentURL: "http://" + addr(4), console: "http://" + addr(5), brokers: []string{addr(1)}}
	logs, err := os.Create(filepath.Join(filepath.Dir(dataDir), filepath.Base(dataDir)+".log"))
	if err != nil {
		return nil, err
	}
	s.logs = logs
	s.cmd = exec.Command(bin, "up", "-fresh", "-data", dataDir, "-pg-port", strconv.Itoa(pgPort),
		"-kafka-port", strconv.Itoa(kafkaPort), "-order-addr", addr(2), "-customer-addr", addr(3),
		"-payment-addr", addr(4), "-console-addr", addr(5), "-relay-metrics-addr", addr(6), "-broker-metrics-addr", addr(7),
		"-jaeger", jaeger, "-connectors", "debezium/connectors")
	s.cmd.Args = append(s.cmd.Args, extra...)
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Dir = ".." // the repository: connector files and Jaeger's config are found from there
	s.cmd.Stdout = logs
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sagabox up: %w", err)
	}
	up := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		done := false
		for sc.Scan() {
			fmt.Fprintln(logs, "up | "+sc.Text())
			if !done && strings.Contains(sc.Text(), "sagabox is up") {
				close(up)
				done = true
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case <-up:
		return s, nil
	case <-time.After(3 * time.Minute):
		s.stop()
		return nil, fmt.Errorf("sagabox up did not come up (see %s)", logs.Name())
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
}

func (s *system) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.logs.Close()
}

// adminToken is the operators' token `sagabox up` generated.
func (s *system) adminToken() (string, error) {
	b, err := os.ReadFile(filepath.Join(s.dataDir, "admin-token"))
	return strings.TrimSpace(string(b)), err
}

// password is the superuser's password of the system's cluster.
func (s *system) password() (string, error) {
	return pgcluster.ReadPassword(filepath.Join(s.dataDir, "postgres-password"))
}

// db opens a superuser pool on database name.
func (s *system) db(ctx context.Context, name string, conns int32) (*pgxpool.Pool, error) {
	pw, err := s.password()
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(pgcluster.AdminURL(s.pgPort, pw, name))
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = conns
	return pgxpool.NewWithConfig(ctx, cfg)
}

// serviceDBs opens a superuser pool of conns connections on each service
// database, by name; closeAll closes them.
func (s *system) serviceDBs(ctx context.Context, conns int32) (dbs map[string]*pgxpool.Pool, closeAll func(), err error) {
	dbs = map[string]*pgxpool.Pool{}
	closeAll = func() {
		for _, db := range dbs {
			db.Close()
		}
	}
	for _, name := range []string{"orderdb", "customerdb", "paymentdb"} {
		if dbs[name], err = s.db(ctx, name, conns); err != nil {
			closeAll()
			return nil, nil, err
		}
	}
	return dbs, closeAll, nil
}

// components returns the pid of every component process: the children of
// `sagabox up` (from their pid files) and the Postgres postmaster.
func (s *system) components() (map[string]int, error) {
	pids := map[string]int{}
	files, err := filepath.Glob(filepath.Join(s.dataDir, "run", "*.pid"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			pids[strings.TrimSuffix(filepath.Base(f), ".pid")] = pid
		}
	}
	b, err := os.ReadFile(filepath.Join(s.dataDir, "pg", "postmaster.pid"))
	if err != nil {
		return nil, fmt.Errorf("read postmaster.pid: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return nil, fmt.Errorf("postmaster.pid: %w", err)
	}
	pids["postgres"] = pid
	pids["up"] = s.cmd.Process.Pid // the supervisor: it copies every line its children log
	return pids, nil
}
