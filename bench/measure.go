package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"
)

// pprofBase is the first pprof port `sagabox up -pprof` hands out: to the
// broker, the relay, then the service instances in start order.
const pprofBase = 6060

var pprofOrder = []string{"broker", "relay", "order-1", "customer-1", "payment-1"}

// profile takes a CPU profile of every component at once, for d.
func profile(ctx context.Context, dir string, d time.Duration) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "bench: profile:", err)
		return
	}
	var wg sync.WaitGroup
	for i, name := range pprofOrder {
		wg.Go(func() {
			url := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", pprofBase+i, int(d.Seconds()))
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench: profile", name, err)
				return
			}
			defer resp.Body.Close()
			f, err := os.Create(filepath.Join(dir, name+".pprof"))
			if err != nil {
				return
			}
			defer f.Close()
			_, _ = io.Copy(f, resp.Body)
		})
	}
	wg.Wait()
}

type result struct {
	tracing                    string
	ceilingTPS                 float64
	ceilingClients             int
	sagasPerSec                float64
	p50, p90, p99, latencyRate float64
	cpuTotal                   float64
	components                 []componentResult
	relay                      []relayResult
}

type componentResult struct {
	name   string
	cpuMS  float64 // per saga
	peakMB float64
}

type relayResult struct {
	name    string
	seconds float64
}

func numCPU() int { return runtime.NumCPU() }

// measure starts a fresh system and takes every measurement on it.
func measure(ctx context.Context, o options, bin, jaeger string, withRelay bool) (result, error) {
	var r result
	dataDir := filepath.Join(o.work, "data-"+filepath.Base(jaeger))
	var extra []string
	if o.profileDir != "" {
		extra = []string{"-pprof", strconv.Itoa(pprofBase)}
	}
	s, err := startSystem(ctx, bin, dataDir, jaeger, o.env, extra...)
	if err != nil {
		return r, err
	}
	defer s.stop()
	orderDB, err := s.db(ctx, "orderdb", 4)
	if err != nil {
		return r, err
	}
	defer orderDB.Close()
	if o.relayOnly {
		r.relay, err = relayBench(ctx, s, o.relayRows)
		return r, err
	}
	customerDB, err := s.db(ctx, "customerdb", 4)
	if err != nil {
		return r, err
	}
	defer customerDB.Close()
	if err := seedCustomers(ctx, customerDB); err != nil {
		return r, err
	}
	fmt.Fprintf(os.Stderr, "bench: tracing %s: ceiling\n", filepath.Base(jaeger))
	if r.ceilingTPS, r.ceilingClients, err = ceiling(ctx, s, o.ceilingFor); err != nil {
		return r, err
	}

	// Warm up: connections, JIT-free but caches and pools.
	warm := time.Now()
	if err := placeAll(ctx, s.orderURL, 300, 8); err != nil {
		return r, err
	}
	if err := waitTerminal(ctx, orderDB, warm, 300, 2*time.Minute); err != nil {
		return r, err
	}

	fmt.Fprintf(os.Stderr, "bench: tracing %s: saturation, %d orders\n", filepath.Base(jaeger), o.orders)
	pids, err := s.components()
	if err != nil {
		return r, err
	}
	rss := sampleRSS(pids)
	before := cpuSnapshot(pids)
	start := time.Now()
	var profiles sync.WaitGroup
	if o.profileDir != "" {
		profiles.Go(func() { profile(ctx, filepath.Join(o.profileDir, filepath.Base(jaeger)), 10*time.Second) })
	}
	if err := placeAll(ctx, s.orderURL, o.orders, o.workers); err != nil {
		return r, err
	}
	if err := waitTerminal(ctx, orderDB, start, o.orders, 10*time.Minute); err != nil {
		return r, err
	}
	after := cpuSnapshot(pids)
	profiles.Wait()
	var n int
	if r.sagasPerSec, n, err = throughput(ctx, orderDB, start); err != nil {
		return r, err
	}
	for name, t := range after {
		ms := float64(t-before[name]) * 1000 / clockTicks / float64(n)
		r.components = append(r.components, componentResult{name: name, cpuMS: ms})
		r.cpuTotal += ms
	}

	rate := r.sagasPerSec / 2
	if o.rate > 0 {
		rate = o.rate
	}
	fmt.Fprintf(os.Stderr, "bench: tracing %s: latency at %.0f orders/s for %s\n", filepath.Base(jaeger), rate, o.latencyFor)
	from := time.Now()
	failed := offer(ctx, s.orderURL, rate, o.latencyFor)
	to := time.Now()
	if failed > 0 {
		return r, fmt.Errorf("%d orders of the latency run failed", failed)
	}
	if err := waitTerminal(ctx, orderDB, from, 1, 2*time.Minute); err != nil {
		return r, err
	}
	ms, err := latencies(ctx, orderDB, from, to)
	if err != nil {
		return r, err
	}
	r.p50, r.p90, r.p99, r.latencyRate = percentile(ms, .50), percentile(ms, .90), percentile(ms, .99), rate

	if withRelay {
		fmt.Fprintf(os.Stderr, "bench: relay alone, %d rows\n", o.relayRows)
		if r.relay, err = relayBench(ctx, s, o.relayRows); err != nil {
			return r, err
		}
	}
	peaks := rss.finish()
	for i := range r.components {
		r.components[i].peakMB = float64(peaks[r.components[i].name]) / 1024
	}
	sort.Slice(r.components, func(i, j int) bool { return r.components[i].cpuMS > r.components[j].cpuMS })
	return r, nil
}
