package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is Linux's USER_HZ: /proc reports CPU time in these.
const clockTicks = 100

// procCPU returns the CPU time of pid in ticks; with reaped, the CPU time
// of its children that have exited and been waited for too.
func procCPU(pid int, reaped bool) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command (which may hold spaces) start after ") ".
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+2:]))
	// f[0] is field 3 (state); utime, stime, cutime, cstime are fields 14-17.
	sum := atoi(f[11]) + atoi(f[12])
	if reaped {
		sum += atoi(f[13]) + atoi(f[14])
	}
	return sum
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// children returns the pids whose parent is pid.
func children(pid int) []int {
	var out []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	want := strconv.Itoa(pid)
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+2:]))
		if len(f) > 1 && f[1] == want {
			if n, err := strconv.Atoi(filepath.Base(d)); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

func cmdline(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.ReplaceAll(string(b), "\x00", " ")
}

// statusKB reads a "Name:   123 kB" line of /proc/pid/status.
func statusKB(pid int, name string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, name+":") {
			return atoi(strings.Fields(line)[1])
		}
	}
	return 0
}

// pssKB is a process's proportional share of its resident memory: shared
// pages (Postgres's shared buffers) counted once across processes.
func pssKB(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, "Pss:") {
			return atoi(strings.Fields(line)[1])
		}
	}
	return 0
}

// cpuSnapshot is the CPU time (ticks) of each component; Postgres is split
// into its walsenders and the rest.
func cpuSnapshot(pids map[string]int) map[string]int64 {
	out := map[string]int64{}
	for name, pid := range pids {
		if name != "postgres" {
			out[name] = procCPU(pid, true)
			continue
		}
		out["postgres"] += procCPU(pid, true) // postmaster and every backend it reaped
		for _, c := range children(pid) {
			key := "postgres"
			if strings.Contains(cmdline(c), "walsender") {
				key = "walsenders"
			}
			out[key] += procCPU(c, false)
		}
	}
	return out
}

// rssSampler samples the memory of every component until stopped and keeps
// the peaks: VmHWM of each process (the kernel's own peak), and for
// Postgres the largest sum of PSS over its processes.
type rssSampler struct {
	mu   sync.Mutex
	peak map[string]int64 // KB
	stop chan struct{}
	done chan struct{}
}

func sampleRSS(pids map[string]int) *rssSampler {
	s := &rssSampler{peak: map[string]int64{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			s.sample(pids)
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) sample(pids map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, pid := range pids {
		var kb int64
		if name == "postgres" {
			kb = pssKB(pid)
			for _, c := range children(pid) {
				kb += pssKB(c)
			}
		} else {
			kb = statusKB(pid, "VmHWM")
		}
		s.peak[name] = max(s.peak[name], kb)
	}
}

func (s *rssSampler) finish() map[string]int64 {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}
