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
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

type options struct {
	orders     int
	workers    int
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
	flag.IntVar(&o.workers, "workers", 32, "concurrent clients placing the saturation run's orders")
	flag.DurationVar(&o.latencyFor, "latency-for", 20*time.Second, "length of the fixed-rate latency run")
	flag.DurationVar(&o.ceilingFor, "ceiling-for", 4*time.Second, "length of each ceiling run")
	flag.IntVar(&o.relayRows, "relay-rows", 50000, "rows of the bulk relay run (0 skips it)")
	flag.Float64Var(&o.rate, "latency-rate", 0, "orders per second of the latency run (default: half the measured maximum)")
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
	var table strings.Builder
	switch {
	case o.relayOnly:
		reportRelay(&table, o, results)
	case !o.saturation:
		reportLatency(&table, o, results)
	default:
		report(&table, o, results)
	}
	fmt.Fprint(stdout, table.String())
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(o.out, []byte(table.String()), 0o644)
}

func report(w io.Writer, o options, rs []result) {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "sagabox bench, %s, %s, %d cores; %d orders from %d clients over %d customers; fsync on\n\n",
		time.Now().UTC().Format(time.RFC3339), host, numCPU(), o.orders, o.workers, numCustomers)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tracing\tceiling tps (clients)\tsagas/s\t5×sagas/s ÷ ceiling\tp50 ms\tp90 ms\tp99 ms\tat sagas/s\tCPU ms/saga\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%.0f (%d)\t%.0f\t%.0f %%\t%.1f\t%.1f\t%.1f\t%.0f\t%.2f\t\n", r.tracing, r.ceilingTPS, r.ceilingClients,
			r.sagasPerSec, 500*r.sagasPerSec/r.ceilingTPS, r.p50, r.p90, r.p99, r.latencyRate, r.cpuTotal)
	}
	tw.Flush()
	reportLatency(w, o, rs)
	for _, r := range rs {
		fmt.Fprintf(w, "\ntracing %s, per component: CPU ms per saga at saturation, peak memory\n", r.tracing)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "component\tCPU ms/saga\tshare\tpeak MB\t")
		for _, c := range r.components {
			fmt.Fprintf(tw, "%s\t%.2f\t%.0f %%\t%.0f\t\n", c.name, c.cpuMS, 100*c.cpuMS/r.cpuTotal, c.peakMB)
		}
		tw.Flush()
	}
	reportRelay(w, o, rs)
}

// reportLatency prints the fixed-rate run's tail and what a run without
// faults must not show (deadline actions, parked messages).
func reportLatency(w io.Writer, o options, rs []result) {
	fmt.Fprintf(w, "\nfixed rate for %s: created → ended, the tail; deadline retries/timeouts and parked messages over the whole run (a run without faults has none); replies found ahead of their saga and waited for\n", o.latencyFor)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tracing\tsagas/s offered\tp50 ms\tp99 ms\tp99.9 ms\tmax ms\tdeadline actions\tparked\tearly replies\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%d\t\n", r.tracing, r.latencyRate, r.p50, r.p99, r.p999, r.max,
			r.health.deadlines, r.health.parked, r.health.early)
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
