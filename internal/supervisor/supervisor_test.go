package supervisor_test

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sagabox/sagabox/internal/supervisor"
	"github.com/sagabox/sagabox/internal/testenv"
)

// The test binary doubles as the children: with SUPERVISOR_TEST_CHILD set
// it behaves as the named kind of child instead of running tests.
func TestMain(m *testing.M) {
	switch os.Getenv("SUPERVISOR_TEST_CHILD") {
	case "":
		os.Exit(m.Run())
	case "serve": // prints, then runs until SIGTERM
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		fmt.Println("hello from", os.Args[1])
		fmt.Fprintln(os.Stderr, "stderr line")
		<-sigs
		fmt.Println("stopping cleanly")
		os.Exit(0)
	case "stubborn": // ignores SIGTERM
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		select {}
	case "supervise": // a supervisor of one "serve" child, for the parent-death test
		os.Setenv("SUPERVISOR_TEST_CHILD", "serve")
		s := supervisor.New(supervisor.Config{Binary: os.Args[0], RunDir: os.Args[1], Logger: slog.New(slog.DiscardHandler)})
		if err := s.Start(supervisor.Spec{Name: "grandchild", Args: []string{"grandchild"}}); err != nil {
			panic(err)
		}
		select {}
	}
}

func newSupervisor(t *testing.T, out *testenv.Buffer, kind string) (*supervisor.Supervisor, string) {
	t.Helper()
	runDir := t.TempDir()
	s := supervisor.New(supervisor.Config{
		Binary: os.Args[0], Env: append(os.Environ(), "SUPERVISOR_TEST_CHILD="+kind),
		Output: out, Logger: slog.New(slog.DiscardHandler), RunDir: runDir,
		MinBackoff: 10 * time.Millisecond, StopTimeout: 500 * time.Millisecond,
	})
	t.Cleanup(s.Stop)
	return s, runDir
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestChildOutputIsPrefixedAndStopIsGraceful(t *testing.T) {
	t.Parallel()
	var out testenv.Buffer
	s, runDir := newSupervisor(t, &out, "serve")
	if err := s.Start(supervisor.Spec{Name: "alpha", Args: []string{"alpha"}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return strings.Contains(out.String(), "stderr line") }, "no output: %q", out.String())
	pid, err := supervisor.ReadPid(runDir, "alpha")
	if err != nil || pid != s.Pid("alpha") {
		t.Fatalf("pid file says %d (%v), supervisor says %d", pid, err, s.Pid("alpha"))
	}
	s.Stop()
	for _, want := range []string{"alpha      | hello from alpha\n", "alpha      | stderr line\n", "alpha      | stopping cleanly\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := os.Stat(filepath.Join(runDir, "alpha.pid")); !os.IsNotExist(err) {
		t.Errorf("pid file left after stop: %v", err)
	}
	if alive(pid) {
		t.Errorf("child %d still alive after Stop", pid)
	}
}

func TestKilledChildIsRestarted(t *testing.T) {
	t.Parallel()
	var out testenv.Buffer
	s, _ := newSupervisor(t, &out, "serve")
	if err := s.Start(supervisor.Spec{Name: "beta", Args: []string{"beta"}}); err != nil {
		t.Fatal(err)
	}
	// Killed once it has printed: killed before, it would print only once.
	testenv.Eventually(t, 10*time.Second, func() bool { return strings.Contains(out.String(), "hello from beta") }, "never started")
	first := s.Pid("beta")
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { p := s.Pid("beta"); return p != 0 && p != first }, "not restarted")
	if got := s.Starts("beta"); got != 2 {
		t.Errorf("started %d times, want 2", got)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return strings.Count(out.String(), "hello from beta") == 2 }, "restarted child printed nothing")
}

func TestChildIgnoringSIGTERMIsKilled(t *testing.T) {
	t.Parallel()
	var out testenv.Buffer
	s, _ := newSupervisor(t, &out, "stubborn")
	if err := s.Start(supervisor.Spec{Name: "gamma"}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return strings.Contains(out.String(), "ready") }, "never ready")
	pid := s.Pid("gamma")
	start := time.Now()
	if err := s.StopChild("gamma"); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Errorf("stubborn child %d survived StopChild", pid)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("killed after %s, before the stop timeout", d)
	}
	if s.Pid("gamma") != 0 || s.Starts("gamma") != 1 {
		t.Errorf("stopped child restarted: pid %d, starts %d", s.Pid("gamma"), s.Starts("gamma"))
	}
}

// Killing the supervisor (SIGKILL: nothing of it runs any more) kills its
// children too, as a power loss would.
func TestSupervisorDeathKillsChildren(t *testing.T) {
	t.Parallel()
	runDir := t.TempDir()
	cmd := exec.Command(os.Args[0], runDir)
	cmd.Env = append(os.Environ(), "SUPERVISOR_TEST_CHILD=supervise")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	var child int
	testenv.Eventually(t, 10*time.Second, func() bool {
		child, err = supervisor.ReadPid(runDir, "grandchild")
		return err == nil && alive(child)
	}, "grandchild never started")
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	testenv.Eventually(t, 10*time.Second, func() bool {
		// A killed child is a zombie until reaped by init; /proc shows it as Z.
		b, err := os.ReadFile("/proc/" + strconv.Itoa(child) + "/stat")
		return err != nil || strings.Contains(string(b), ") Z ")
	}, "child %d outlived its supervisor", child)
}
