package main

import (
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The short form of `make bench`, in `make test`: the whole harness on a
// small load, tracing off — the system starts, every measurement is taken
// and the table is written with plausible values. The numbers themselves
// are the long form's business.
func TestBenchShortForm(t *testing.T) {
	out := filepath.Join(t.TempDir(), "results.txt")
	o := options{orders: 200, workers: 8, clients: []int{8}, latencyFor: 2e9, ceilingFor: 3e8, modes: []string{"off"},
		relayRows: 2000, out: out, saturation: true}
	var stdout strings.Builder
	if err := run(context.Background(), o, &stdout); err != nil {
		t.Fatal(err)
	}
	table := stdout.String()
	t.Log("\n" + table)
	row := regexp.MustCompile(`(?m)^\s*sagabox, tracing off\s+(\d+) \((\d+)\)\s+(\d+)\s+(\d+) %\s+([\d.]+)\s*$`).FindStringSubmatch(table)
	if row == nil {
		t.Fatalf("no result row in:\n%s", table)
	}
	for i, name := range []string{"", "ceiling tps", "clients", "sagas/s", "ratio", "CPU ms/saga"} {
		if i == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(row[i], 64); err != nil || v <= 0 {
			t.Errorf("%s = %q, want a positive number", name, row[i])
		}
	}
	// The plain-load check: no saga waited for a deadline, nothing was
	// parked (the run injects no fault).
	tail := regexp.MustCompile(`(?m)^\s*sagabox, tracing off\s+after saturation\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$`).FindStringSubmatch(table)
	if tail == nil {
		t.Fatalf("no fixed-rate row in:\n%s", table)
	}
	if tail[6] != "0" || tail[7] != "0" {
		t.Errorf("a run without faults had %s deadline actions and %s parked messages, want none", tail[6], tail[7])
	}
	if max, err := strconv.ParseFloat(tail[5], 64); err != nil || max <= 0 {
		t.Errorf("max latency %q", tail[5])
	}
	// Each message's way, timed from the databases: four hops, each with
	// a positive median.
	hopsRow := regexp.MustCompile(`(?m)^\s*sagabox, tracing off\s+after saturation\s+([\d.]+) / [\d.]+\s+([\d.]+) / [\d.]+\s+([\d.]+) / [\d.]+\s+([\d.]+) / [\d.]+\s+\d+ checkpoints`).FindStringSubmatch(table)
	if hopsRow == nil {
		t.Errorf("no row of the messages' ways in:\n%s", table)
	} else {
		for i, name := range hopNames {
			if v, err := strconv.ParseFloat(hopsRow[i+1], 64); err != nil || v <= 0 {
				t.Errorf("hop %s: median %q, want a positive number", name, hopsRow[i+1])
			}
		}
	}
	if !strings.Contains(table, "sagabox's correctness check, tracing off: ok") {
		t.Errorf("the correctness check did not pass:\n%s", table)
	}
	for _, want := range []string{"postgres", "order-1", "relay", "broker", "walsenders", "sagabox relay", "Watermill SQL forwarder",
		"Postgres' active sessions at saturation"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q", want)
		}
	}
}

// The short form of `make scale`, in `make test`: the empty system
// measured, a few thousand finished sagas written as the long form writes
// ten million, measured again; every read answers.
func TestScaleShortForm(t *testing.T) {
	out := filepath.Join(t.TempDir(), "results.txt")
	o := options{orders: 100, workers: 8, latencyFor: 2e9, modes: []string{"off"}, out: out, scale: 3000, reads: 3}
	var stdout strings.Builder
	if err := run(context.Background(), o, &stdout); err != nil {
		t.Fatal(err)
	}
	table := stdout.String()
	t.Log("\n" + table)
	for _, want := range []string{"3000 finished sagas written", "saturation, sagas/s", "p99 ms at", "order: saga stats (15m)",
		"order: sagas of a customer", "console: overview", "payment: an order's payments"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	ratio := regexp.MustCompile(`(?m)^\s*saturation, sagas/s.*\s([\d.]+)\s*$`).FindStringSubmatch(table)
	if ratio == nil {
		t.Fatalf("no saturation ratio in:\n%s", table)
	}
	if v, err := strconv.ParseFloat(ratio[1], 64); err != nil || v <= 0 {
		t.Errorf("saturation ratio %q", ratio[1])
	}
}
