// Command bench measures sagabox on the local system as `make run` starts
// it — one process per component, fsync on — against the commit ceiling of
// the same Postgres cluster in the same run, and prints one table (kept in
// results/<date>.txt):
//
//   - the ceiling: transactions of one business row + one outbox row per
//     second, at the concurrency that maximises it;
//   - sagas per second at saturation (a backlog of orders over many
//     customers, completion read from the database) and 5 × sagas/s ÷
//     ceiling: a saga needs five such commits;
//   - latency created → ended at half the measured maximum, offered at a
//     fixed rate (open loop);
//   - CPU milliseconds per saga and peak memory of every component;
//   - the relay alone, rows inserted in bulk → acknowledged by Kafka, and
//     Watermill's SQL forwarder doing the same on the same database and
//     broker.
//
// It is a module of its own so that the product never depends on Watermill.
// Run it alone on the machine: it measures the machine.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

type options struct {
	orders     int
	workers    int   // the scale and short forms' clients
	clients    []int // the saturation runs' clients, each its own run
	dtm        bool  // measure DTM too
	latencyFor time.Duration
	ceilingFor time.Duration
	modes      []string // "traced", "untraced"
	relayRows  int
	out        string
	work       string
	profileDir string
	relayOnly  bool
	rate       float64  // orders/s of the latency run; 0: half the measured maximum
	env        []string // added to the system's environment
	saturation bool     // measure the ceiling and saturation; false: the fixed-rate run alone (-latency-rate)
	scale      int      // the scale benchmark: finished sagas written between the two rounds (0: not this one)
	reads      int      // the scale benchmark: requests per read
	soak       time.Duration
	soakRate   float64
}

func main() {
	var o options
	modes := flag.String("tracing", "on,off", "tracing modes to run: on (Jaeger, as make run), off")
	flag.IntVar(&o.orders, "orders", 3000, "orders of the saturation run")
	flag.IntVar(&o.workers, "workers", 32, "concurrent clients placing the orders of the scale bench's saturation runs")
	clients := flag.String("clients", "8,32", "concurrent clients of the saturation runs, one run each (comma-separated)")
	flag.BoolVar(&o.dtm, "dtm", true, "measure DTM v1.19.0 on the same workload (bench/dtm)")
	flag.DurationVar(&o.latencyFor, "latency-for", 20*time.Second, "length of the fixed-rate latency run")
	flag.DurationVar(&o.ceilingFor, "ceiling-for", 4*time.Second, "length of each ceiling run")
	flag.IntVar(&o.relayRows, "relay-rows", 50000, "rows of the bulk relay run (0 skips it)")
	flag.Float64Var(&o.rate, "latency-rate", 160, "orders per second of the fixed-rate runs, after the warm-up and right after saturation (0: half the measured maximum, after saturation only)")
	flag.BoolVar(&o.relayOnly, "relay-only", false, "measure only the relay and Watermill's forwarder")
	flag.BoolVar(&o.saturation, "saturation", true, "measure the ceiling and the saturation throughput first; false: only the fixed-rate run at -latency-rate (the plain-load check)")
	flag.IntVar(&o.scale, "scale", 0, "the scale benchmark: measure, write the rows of this many finished sagas, measure again")
	flag.IntVar(&o.reads, "reads", 20, "the scale benchmark: requests per admin or console read")
	flag.DurationVar(&o.soak, "soak", 0, "the soak: orders at -soak-rate for this long with retentions of minutes, table sizes printed")
	flag.Float64Var(&o.soakRate, "soak-rate", 100, "the soak's orders per second")
	flag.StringVar(&o.profileDir, "profile", "", "write a CPU profile of every component during the saturation run to this directory")
	flag.Func("env", "KEY=value added to the system's environment (repeatable), e.g. LOG_LEVEL=warn", func(v string) error {
		o.env = append(o.env, v)
		return nil
	})
	flag.StringVar(&o.out, "out", filepath.Join("results", time.Now().Format("2006-01-02")+".txt"), "results file")
	cpuProfile := flag.String("cpuprofile", "", "write the bench process's own CPU profile (the relay runs in it during -relay-only)")
	flag.Parse()
	if !o.saturation && o.rate <= 0 {
		log.Fatal("bench: -saturation=false needs -latency-rate")
	}
	for m := range strings.SplitSeq(*modes, ",") {
		o.modes = append(o.modes, strings.TrimSpace(m))
	}
	for c := range strings.SplitSeq(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n <= 0 {
			log.Fatalf("bench: -clients %q: want positive numbers", *clients)
		}
		o.clients = append(o.clients, n)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		pprof.StopCPUProfile()
		log.Fatalf("bench: %v", err)
	}
}

func run(ctx context.Context, o options, stdout io.Writer) error {
	work, err := os.MkdirTemp("", "sagabox-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	o.work = work
	bin := filepath.Join(work, "sagabox")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sagabox")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build sagabox: %w", err)
	}
	if o.scale > 0 || o.soak > 0 {
		var table strings.Builder
		if o.scale > 0 {
			err = runScale(ctx, o, bin, &table)
		} else {
			err = runSoak(ctx, o, bin, &table)
		}
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, table.String())
		if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(o.out, []byte(table.String()), 0o644)
	}
	var results []result
	for _, m := range o.modes {
		jaeger := "none"
		if m == "on" {
			jaeger = "bin/jaeger"
			if _, err := os.Stat("../bin/jaeger"); err != nil {
				return fmt.Errorf("tracing on needs bin/jaeger (make jaeger): %w", err)
			}
		}
		r, err := measure(ctx, o, bin, jaeger, m == o.modes[len(o.modes)-1] && o.relayRows > 0)
		if err != nil {
			return fmt.Errorf("tracing %s: %w", m, err)
		}
		r.tracing = m
		results = append(results, r)
	}
	var dtm *dtmResult
	if o.dtm && o.saturation && !o.relayOnly {
		d, err := measureDTM(ctx, o)
		if err != nil {
			return fmt.Errorf("dtm: %w", err)
		}
		dtm = &d
	}
	var table strings.Builder
	switch {
	case o.relayOnly:
		reportRelay(&table, o, results)
	case !o.saturation:
		reportLatency(&table, o, results, nil)
	default:
		report(&table, o, results, dtm)
	}
	fmt.Fprint(stdout, table.String())
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(o.out, []byte(table.String()), 0o644)
}

func report(w io.Writer, o options, rs []result, dtm *dtmResult) {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "sagabox bench, %s, %s, %d cores; %d orders a saturation run, over %d customers; fsync on\n\n",
		time.Now().UTC().Format(time.RFC3339), host, numCPU(), o.orders, numCustomers)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "system\tceiling tps (clients)\t")
	for _, c := range o.clients {
		fmt.Fprintf(tw, "sagas/s, %d clients\t", c)
	}
	fmt.Fprintln(tw, "5×sagas/s ÷ ceiling\tCPU ms/saga\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "sagabox, tracing %s\t%.0f (%d)\t", r.tracing, r.ceilingTPS, r.ceilingClients)
		for _, c := range o.clients {
			fmt.Fprintf(tw, "%.0f\t", r.byClients[c])
		}
		fmt.Fprintf(tw, "%.0f %%\t%.2f\t\n", 500*r.sagasPerSec/r.ceilingTPS, r.cpuTotal)
	}
	if dtm != nil {
		fmt.Fprint(tw, "DTM v1.19.0\t\t")
		for _, c := range o.clients {
			fmt.Fprintf(tw, "%.0f\t", dtm.sagasPerSec[c])
		}
		fmt.Fprintf(tw, "\t%.2f\t\n", dtm.cpuMS)
	}
	tw.Flush()
	reportLatency(w, o, rs, dtm)
	if dtm != nil {
		fmt.Fprintln(w, "\nsagabox (tracing off) ÷ DTM, sagas/s at saturation:")
		for _, r := range rs {
			if r.tracing != "off" {
				continue
			}
			for _, c := range o.clients {
				fmt.Fprintf(w, "  %d clients: %.2f×\n", c, r.byClients[c]/dtm.sagasPerSec[c])
			}
		}
		fmt.Fprintf(w, "DTM's correctness check: %s\n", dtm.check)
	}
	for _, r := range rs {
		if r.check != "" {
			fmt.Fprintf(w, "sagabox's correctness check, tracing %s: %s\n", r.tracing, r.check)
		}
	}
	if len(rs) == 2 && rs[0].tracing == "on" && rs[1].tracing == "off" {
		last := o.clients[len(o.clients)-1]
		fmt.Fprintf(w, "tracing on ÷ off, sagas/s at %d clients: %.2f\n", last, rs[0].byClients[last]/rs[1].byClients[last])
	}
	for _, r := range rs {
		fmt.Fprintf(w, "\nsagabox, tracing %s, per component: CPU ms per saga at saturation (%d clients), peak memory\n", r.tracing, o.clients[len(o.clients)-1])
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "component\tCPU ms/saga\tshare\tpeak MB\t")
		for _, c := range r.components {
			fmt.Fprintf(tw, "%s\t%.2f\t%.0f %%\t%.0f\t\n", c.name, c.cpuMS, 100*c.cpuMS/r.cpuTotal, c.peakMB)
		}
		tw.Flush()
		fmt.Fprintf(w, "\nsagabox, tracing %s: Postgres' active sessions at saturation, sampled every 10 ms (CPU: waiting for nothing)\n", r.tracing)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "database\tstate\tshare\t")
		for _, s := range r.waits {
			fmt.Fprintf(tw, "%s\t%s\t%.0f %%\t\n", s.db, s.event, 100*s.share)
		}
		tw.Flush()
	}
	if dtm != nil {
		fmt.Fprintf(w, "\nDTM, per process: CPU ms per saga at saturation (%d clients)\n", o.clients[len(o.clients)-1])
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "process\tCPU ms/saga\tshare\t")
		for _, c := range dtm.components {
			fmt.Fprintf(tw, "%s\t%.2f\t%.0f %%\t\n", c.name, c.cpuMS, 100*c.cpuMS/dtm.cpuMS)
		}
		tw.Flush()
	}
	reportRelay(w, o, rs)
}

// reportLatency prints the fixed-rate runs' tails — after the warm-up and
// right after the saturation runs — and what a run without faults must not
// show (deadline actions, parked messages).
func reportLatency(w io.Writer, o options, rs []result, dtm *dtmResult) {
	fmt.Fprintf(w, "\nfixed rate for %s, created → ended: after the warm-up, and right after the saturation runs; deadline retries/timeouts and parked messages over the whole run (a run without faults has none); replies found ahead of their saga and waited for\n", o.latencyFor)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\twhen\tsagas/s offered\tp50 ms\tp99 ms\tp99.9 ms\tmax ms\tdeadline actions\tparked\tearly replies\t")
	for _, r := range rs {
		if r.warm.rate > 0 {
			fmt.Fprintf(tw, "sagabox, tracing %s\twarm\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t\t\t\t\n", r.tracing, r.warm.rate, r.warm.p50, r.warm.p99, r.warm.p999, r.warm.maxv)
		}
		when := "after saturation"
		if !o.saturation {
			when = "warm"
		}
		fmt.Fprintf(tw, "sagabox, tracing %s\t%s\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%d\t\n", r.tracing, when, r.latencyRate, r.p50, r.p99, r.p999, r.max,
			r.health.deadlines, r.health.parked, r.health.early)
	}
	if dtm != nil {
		for _, l := range []struct {
			when string
			l    latencyResult
		}{{"warm", dtm.warm}, {"after saturation", dtm.hot}} {
			fmt.Fprintf(tw, "DTM v1.19.0\t%s\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t\t\t\t\n", l.when, l.l.rate, l.l.p50, l.l.p99, l.l.p999, l.l.maxv)
		}
	}
	tw.Flush()

	fmt.Fprintln(w, "\nsagabox at the fixed rate, each message's way (from the transaction that wrote it to the one that applied it: commit, WAL, relay, broker, consumer), p50 / p99 ms")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "system\twhen\t")
	for _, h := range hopNames {
		fmt.Fprintf(tw, "%s\t", h)
	}
	fmt.Fprintln(tw, "meanwhile\t")
	for _, r := range rs {
		for _, run := range []struct {
			when       string
			hops       []hopLatency
			background background
		}{{"warm", r.warm.hops, r.warm.background}, {"after saturation", r.hops, r.background}} {
			if run.hops == nil {
				continue
			}
			fmt.Fprintf(tw, "sagabox, tracing %s\t%s\t", r.tracing, run.when)
			for _, h := range run.hops {
				fmt.Fprintf(tw, "%.1f / %.1f\t", h.p50, h.p99)
			}
			fmt.Fprintf(tw, "%s\t\n", run.background)
		}
	}
	tw.Flush()
}

func reportRelay(w io.Writer, o options, rs []result) {
	for _, r := range rs {
		if r.relay == nil {
			continue
		}
		fmt.Fprintf(w, "\nrelay alone: %d outbox rows inserted in one transaction → acknowledged by Kafka (same database, same broker)\n", o.relayRows)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "relay\tseconds\tevents/s\t")
		for _, x := range r.relay {
			fmt.Fprintf(tw, "%s\t%.2f\t%.0f\t\n", x.name, x.seconds, float64(o.relayRows)/x.seconds)
		}
		tw.Flush()
		if len(r.relay) == 2 {
			fmt.Fprintf(w, "sagabox relay / Watermill forwarder: %.1f×\n", r.relay[1].seconds/r.relay[0].seconds)
		}
	}
}
