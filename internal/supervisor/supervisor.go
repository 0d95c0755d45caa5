// Package supervisor runs the components of the local system as child
// processes and keeps them running: a child that exits while the supervisor
// is not stopping is started again after a backoff. Every line a child
// writes is copied to the supervisor's output prefixed with the child's
// name. `sagabox up` uses it to run the broker, the relay and every service
// instance as its own OS process.
//
// Children run in their own process group (a Ctrl-C at the terminal reaches
// only the supervisor, which stops them in order) and are killed by the
// kernel if the supervisor dies (Linux's parent-death signal), so killing
// the supervisor kills the whole system, as a power loss would. The pid of
// every running child is written to <RunDir>/<name>.pid, which is what fault
// tests use to kill single components.
package supervisor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config configures a Supervisor. Only Binary is required.
type Config struct {
	// Binary is the program every child runs (with its Spec.Args).
	Binary string
	// Env is the environment every child starts from (os.Environ() when
	// nil); Spec.Env is added to it.
	Env []string
	// Output receives the children's lines, prefixed; default os.Stdout.
	Output io.Writer
	// Logger receives the supervisor's own messages; default slog.Default().
	Logger *slog.Logger
	// RunDir, when set, receives a <name>.pid file per running child.
	RunDir string
	// MinBackoff and MaxBackoff bound the wait before a restart (defaults
	// 200ms and 5s). The backoff doubles while a child keeps failing
	// within StableAfter of its start, and is reset once it ran longer.
	MinBackoff, MaxBackoff time.Duration
	// StableAfter: see MinBackoff (default 10s).
	StableAfter time.Duration
	// StopTimeout is how long a child may take to stop after SIGTERM
	// before it is killed (default 15s).
	StopTimeout time.Duration
}

// Spec is one child.
type Spec struct {
	// Name identifies the child in logs and pid files ("order-1").
	Name string
	// Binary, when set, replaces Config.Binary for this child.
	Binary string
	// Args follow the binary on the command line.
	Args []string
	// Env is added to Config.Env (KEY=value).
	Env []string
	// Output, when set, receives this child's output as it is, instead of
	// the prefixed copy in Config.Output.
	Output io.Writer
}

// Supervisor runs children until stopped.
type Supervisor struct {
	cfg Config
	log *slog.Logger
	out *lineWriter

	mu       sync.Mutex
	children []*child // in the order they were added
}

type child struct {
	spec   Spec
	stop   chan struct{} // closed to stop it for good
	done   chan struct{} // closed when its loop ended
	mu     sync.Mutex
	cmd    *exec.Cmd // the running process, nil between runs
	starts int
}

// New returns a supervisor with no children.
func New(cfg Config) *Supervisor {
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	if cfg.Output == nil {
		cfg.Output = os.Stdout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.StableAfter == 0 {
		cfg.StableAfter = 10 * time.Second
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 15 * time.Second
	}
	return &Supervisor{cfg: cfg, log: cfg.Logger, out: &lineWriter{w: cfg.Output}}
}

// Start starts spec and keeps it running until Stop. Names must be unique.
func (s *Supervisor) Start(spec Spec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.children {
		if c.spec.Name == spec.Name {
			return fmt.Errorf("supervisor: child %s already started", spec.Name)
		}
	}
	c := &child{spec: spec, stop: make(chan struct{}), done: make(chan struct{})}
	s.children = append(s.children, c)
	go s.keep(c)
	return nil
}

// Pid returns the pid of the running process of child name, 0 if none.
func (s *Supervisor) Pid(name string) int {
	c := s.child(name)
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil || c.cmd.Process == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// Starts returns how many times child name was started.
func (s *Supervisor) Starts(name string) int {
	c := s.child(name)
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.starts
}

func (s *Supervisor) child(name string) *child {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.children {
		if c.spec.Name == name {
			return c
		}
	}
	return nil
}

// Stop stops every child, the most recently started first, each with
// SIGTERM and, after StopTimeout, SIGKILL, and waits for them.
func (s *Supervisor) Stop() {
	s.mu.Lock()
	children := append([]*child(nil), s.children...)
	s.mu.Unlock()
	for i := len(children) - 1; i >= 0; i-- {
		s.stopChild(children[i])
	}
}

// StopChild stops child name for good (it is not restarted) and waits.
func (s *Supervisor) StopChild(name string) error {
	c := s.child(name)
	if c == nil {
		return fmt.Errorf("supervisor: no child %s", name)
	}
	s.stopChild(c)
	return nil
}

func (s *Supervisor) stopChild(c *child) {
	c.mu.Lock()
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.mu.Unlock()
	<-c.done
}

// keep runs c until it is stopped, restarting it after every exit.
func (s *Supervisor) keep(c *child) {
	defer close(c.done)
	backoff := s.cfg.MinBackoff
	for {
		started := time.Now()
		err := s.runOnce(c)
		select {
		case <-c.stop:
			return
		default:
		}
		if time.Since(started) >= s.cfg.StableAfter {
			backoff = s.cfg.MinBackoff
		}
		s.log.Warn("component exited, restarting", "component", c.spec.Name, "err", err, "backoff", backoff)
		select {
		case <-c.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

// runOnce starts c's process and waits until it exits, or until c is
// stopped (then it terminates it).
func (s *Supervisor) runOnce(c *child) error {
	bin := s.cfg.Binary
	if c.spec.Binary != "" {
		bin = c.spec.Binary
	}
	cmd := exec.Command(bin, c.spec.Args...)
	cmd.Env = append(append([]string(nil), s.cfg.Env...), c.spec.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("pipe stdout of %s: %w", c.spec.Name, err)
	}
	cmd.Stderr = cmd.Stdout // one stream, one order
	c.mu.Lock()
	select {
	case <-c.stop:
		c.mu.Unlock()
		return nil
	default:
	}
	if err := cmd.Start(); err != nil {
		c.mu.Unlock()
		return fmt.Errorf("start %s: %w", c.spec.Name, err)
	}
	c.cmd = cmd
	c.starts++
	c.mu.Unlock()
	s.writePid(c.spec.Name, cmd.Process.Pid)
	s.log.Info("component started", "component", c.spec.Name, "pid", cmd.Process.Pid)

	copied := make(chan struct{})
	go func() {
		defer close(copied)
		if c.spec.Output != nil {
			_, _ = io.Copy(c.spec.Output, stdout)
			return
		}
		s.out.copyLines(c.spec.Name, stdout)
	}()
	exited := make(chan error, 1)
	go func() {
		<-copied // Wait closes the pipe: read it to the end first
		exited <- cmd.Wait()
	}()

	var werr error
	select {
	case werr = <-exited:
	case <-c.stop:
		werr = s.terminate(cmd, exited)
	}
	s.removePid(c.spec.Name, cmd.Process.Pid)
	c.mu.Lock()
	c.cmd = nil
	c.mu.Unlock()
	return werr
}

// terminate sends SIGTERM to the child's process group, then SIGKILL after
// StopTimeout, and returns its exit.
func (s *Supervisor) terminate(cmd *exec.Cmd, exited <-chan error) error {
	pgid := -cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case err := <-exited:
		return err
	case <-time.After(s.cfg.StopTimeout):
	}
	s.log.Warn("component did not stop in time, killing it", "pid", cmd.Process.Pid, "timeout", s.cfg.StopTimeout)
	_ = syscall.Kill(pgid, syscall.SIGKILL)
	return <-exited
}

func (s *Supervisor) writePid(name string, pid int) {
	if s.cfg.RunDir == "" {
		return
	}
	if err := os.MkdirAll(s.cfg.RunDir, 0o755); err != nil {
		s.log.Warn("create run dir", "err", err)
		return
	}
	path := filepath.Join(s.cfg.RunDir, name+".pid")
	if err := os.WriteFile(path, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		s.log.Warn("write pid file", "path", path, "err", err)
	}
}

// removePid removes name's pid file if it still names pid.
func (s *Supervisor) removePid(name string, pid int) {
	if s.cfg.RunDir == "" {
		return
	}
	path := filepath.Join(s.cfg.RunDir, name+".pid")
	if b, err := os.ReadFile(path); err == nil && string(b) == strconv.Itoa(pid)+"\n" {
		_ = os.Remove(path)
	}
}

// ReadPid reads the pid file of child name in runDir.
func ReadPid(runDir, name string) (int, error) {
	b, err := os.ReadFile(filepath.Join(runDir, name+".pid"))
	if err != nil {
		return 0, fmt.Errorf("read pid of %s: %w", name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("read pid of %s: %w", name, err)
	}
	return pid, nil
}

// lineWriter copies whole lines of several children to one writer.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) copyLines(name string, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	prefix := []byte(fmt.Sprintf("%-10s | ", name))
	for sc.Scan() {
		line := append(append(append([]byte(nil), prefix...), sc.Bytes()...), '\n')
		l.mu.Lock()
		_, _ = l.w.Write(line)
		l.mu.Unlock()
	}
	if err := sc.Err(); err != nil && !errors.Is(err, os.ErrClosed) {
		l.mu.Lock()
		fmt.Fprintf(l.w, "%s(output truncated: %v)\n", prefix, err)
		l.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r) // never block the child on a full pipe
}
