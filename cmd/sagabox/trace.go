package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/sagabox/sagabox/internal/tracecli"
)

// traceCmd prints one order's trace as a waterfall, from Jaeger's HTTP API.
// The argument is an order id (looked up by the order.id span attribute) or
// a 32-hex-digit trace id.
func traceCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("jaeger", envOr(getenv, "JAEGER_QUERY_URL", "http://localhost:16686"), "Jaeger query base URL")
	lookback := fs.Duration("lookback", 24*time.Hour, "how far back to search for the order")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: sagabox trace [-jaeger URL] ORDER_ID|TRACE_ID")
	}
	arg := fs.Arg(0)
	client := &http.Client{Timeout: 10 * time.Second}
	traceID := arg
	if _, err := strconv.ParseInt(arg, 10, 64); err == nil {
		ids, err := tracecli.FindByTag(ctx, client, *base, "order-service", "order.id", arg, *lookback)
		if err != nil {
			return fmt.Errorf("find trace of order %s: %w", arg, err)
		}
		if len(ids) == 0 {
			return fmt.Errorf("no trace of order %s in Jaeger at %s", arg, *base)
		}
		traceID = ids[0]
	}
	t, err := tracecli.Fetch(ctx, client, *base, traceID)
	if err != nil {
		return err
	}
	return tracecli.Waterfall(stdout, t)
}
