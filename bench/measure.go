package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
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
	sagasPerSec                float64         // at the most clients
	byClients                  map[int]float64 // sagas/s at saturation, by clients
	p50, p90, p99, latencyRate float64         // the fixed-rate run right after saturation (hot)
	p999, max                  float64
	hops                       []hopLatency  // each message's way in the fixed-rate run right after saturation
	background                 background    // what the databases did besides, in that run
	check                      string        // the correctness check after the runs: "ok" or the problems
	warm                       latencyResult // the fixed-rate run after the warm-up
	cpuTotal                   float64
	components                 []componentResult
	waits                      []waitSample // Postgres' active sessions at saturation (the most clients)
	relay                      []relayResult
	health                     health
}

// health is what a run without faults must not show: a saga that waited
// for a deadline (history rows retry or timeout) or a parked message; and
// how many replies arrived ahead of their saga's state and were waited for
// (the order service's sagabox_messages_early_total).
type health struct {
	deadlines, parked, early int64
}

func (h health) ok() bool { return h.deadlines == 0 && h.parked == 0 }

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
	if !o.saturation {
		// The plain-load check alone: orders at a fixed rate.
		err = latencyRun(ctx, o, s, orderDB, o.rate, &r)
		if err == nil {
			r.health, err = checkHealth(ctx, s)
		}
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
	// The fixed rate after the warm-up, before any saturation.
	if o.rate > 0 {
		var w result
		if err := latencyRun(ctx, o, s, orderDB, o.rate, &w); err != nil {
			return r, err
		}
		r.warm = latencyResult{rate: o.rate, p50: w.p50, p99: w.p99, p999: w.p999, maxv: w.max, hops: w.hops, background: w.background}
	}

	pids, err := s.components()
	if err != nil {
		return r, err
	}
	rss := sampleRSS(pids)
	r.byClients = map[int]float64{}
	for i, clients := range o.clients {
		fmt.Fprintf(os.Stderr, "bench: tracing %s: saturation, %d orders from %d clients\n", filepath.Base(jaeger), o.orders, clients)
		last := i == len(o.clients)-1
		before := cpuSnapshot(pids)
		start := time.Now()
		var profiles sync.WaitGroup
		if o.profileDir != "" && last {
			profiles.Go(func() { profile(ctx, filepath.Join(o.profileDir, filepath.Base(jaeger)), 10*time.Second) })
		}
		sampling, stopSampling := context.WithCancel(ctx)
		if last {
			profiles.Go(func() { r.waits = sampleWaits(sampling, orderDB) })
		}
		if err := placeAll(ctx, s.orderURL, o.orders, clients); err != nil {
			stopSampling()
			return r, err
		}
		err := waitTerminal(ctx, orderDB, start, o.orders, 10*time.Minute)
		stopSampling()
		if err != nil {
			return r, err
		}
		after := cpuSnapshot(pids)
		profiles.Wait()
		var n int
		if r.sagasPerSec, n, err = throughput(ctx, orderDB, start); err != nil {
			return r, err
		}
		r.byClients[clients] = r.sagasPerSec
		if last {
			for name, t := range after {
				ms := float64(t-before[name]) * 1000 / clockTicks / float64(n)
				r.components = append(r.components, componentResult{name: name, cpuMS: ms})
				r.cpuTotal += ms
			}
		}
	}

	// The fixed rate right after the saturation runs.
	rate := r.sagasPerSec / 2
	if o.rate > 0 {
		rate = o.rate
	}
	if err := latencyRun(ctx, o, s, orderDB, rate, &r); err != nil {
		return r, err
	}

	if withRelay {
		fmt.Fprintf(os.Stderr, "bench: relay alone, %d rows\n", o.relayRows)
		if r.relay, err = relayBench(ctx, s, o.relayRows); err != nil {
			return r, err
		}
	}
	if r.health, err = checkHealth(ctx, s); err != nil {
		return r, err
	}
	if r.check, err = checkMoney(ctx, s); err != nil {
		return r, err
	}
	peaks := rss.finish()
	for i := range r.components {
		r.components[i].peakMB = float64(peaks[r.components[i].name]) / 1024
	}
	sort.Slice(r.components, func(i, j int) bool { return r.components[i].cpuMS > r.components[j].cpuMS })
	return r, nil
}

// latencyRun offers orders at rate for o.latencyFor (open loop) and records
// the latency of their sagas, created → ended, in r.
func latencyRun(ctx context.Context, o options, s *system, orderDB *pgxpool.Pool, rate float64, r *result) error {
	fmt.Fprintf(os.Stderr, "bench: latency at %.0f orders/s for %s\n", rate, o.latencyFor)
	before, err := backgroundNow(ctx, s)
	if err != nil {
		return err
	}
	from := time.Now()
	failed := offer(ctx, s.orderURL, rate, o.latencyFor)
	to := time.Now()
	if failed > 0 {
		return fmt.Errorf("%d orders of the latency run failed", failed)
	}
	if err := waitTerminal(ctx, orderDB, from, 1, 2*time.Minute); err != nil {
		return err
	}
	after, err := backgroundNow(ctx, s)
	if err != nil {
		return err
	}
	r.background = background{checkpoints: after.checkpoints - before.checkpoints, vacuums: after.vacuums - before.vacuums, lagKB: before.lagKB}
	ms, err := latencies(ctx, orderDB, from, to)
	if err != nil {
		return err
	}
	r.p50, r.p90, r.p99, r.latencyRate = percentile(ms, .50), percentile(ms, .90), percentile(ms, .99), rate
	r.p999 = percentile(ms, .999)
	if len(ms) > 0 {
		r.max = ms[len(ms)-1]
	}
	r.hops, err = hops(ctx, s, from, to)
	return err
}

// checkHealth counts, over the whole run, the sagas' deadline actions
// (history rows retry and timeout), the messages parked in every service
// database, and the replies the order service found ahead of their saga.
func checkHealth(ctx context.Context, s *system) (health, error) {
	var h health
	for _, db := range []string{"orderdb", "customerdb", "paymentdb"} {
		pool, err := s.db(ctx, db, 1)
		if err != nil {
			return h, err
		}
		var parked int64
		err = pool.QueryRow(ctx, `SELECT count(*) FROM parkedmessage`).Scan(&parked)
		if err == nil && db == "orderdb" {
			err = pool.QueryRow(ctx, `SELECT count(*) FROM sagastate_history WHERE cause IN ('retry', 'timeout')`).Scan(&h.deadlines)
		}
		pool.Close()
		if err != nil {
			return h, fmt.Errorf("%s: %w", db, err)
		}
		h.parked += parked
	}
	early, err := scrapeCounter(ctx, s.orderURL+"/metrics", "sagabox_messages_early_total")
	h.early = int64(early)
	return h, err
}

// scrapeCounter sums the samples of counter name in a Prometheus text page.
func scrapeCounter(ctx context.Context, url, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum, sc.Err()
}
