// Command sagabox is the one binary of the system:
//
//	sagabox up                      the whole system locally, one supervised process per component
//	sagabox order|customer|payment  one service of the registry, configured by environment variables
//	sagabox relay                   the outbox relays for debezium/connectors/*.json
//	sagabox broker                  the embedded Kafka-protocol broker
//	sagabox console                 the dashboard in the browser
//	sagabox place FILE              place an order (Idempotency-Key, sent again safely)
//	sagabox trace ORDER_ID|TRACE_ID print one order's trace from Jaeger as a waterfall
//	sagabox sagas list|show|abort|retry|compensate  the order service's saga admin API
//	sagabox parked list|replay      the services' parked messages
//	sagabox card-keys [-rotate]     create or rotate the card key file (CARD_KEYS_FILE)
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sagabox/sagabox/registry"
)

// usage lists the commands; the services are the registry's.
func usage() string {
	var svcs strings.Builder
	for _, c := range registry.Services() {
		fmt.Fprintf(&svcs, "  %-9s run the %s service, a saga %s (env: HTTP_ADDR, DATABASE_URL, KAFKA_BROKERS, OTEL_*, …)\n",
			c.Name, c.Name, c.Role)
	}
	return strings.Replace(usageText, "SERVICES\n", svcs.String(), 1)
}

const usageText = `usage: sagabox <command> [flags]

commands:
  up        run the whole system locally, one process per component: Postgres, Kafka (embedded),
            the relay, the services (flags: sagabox up -h)
SERVICES
  relay     run the outbox relays       (env: CONNECTORS_DIR, KAFKA_BROKERS, RELAY_DATABASE_HOST, ...)
  broker    run the embedded Kafka broker (flags: -data, -port, -metrics-addr)
  console   run the dashboard (env: HTTP_ADDR, ORDER_URLS, PARTICIPANT_URLS, CONSOLE_TOKEN, CONSOLE_HOSTS,
            JAEGER_QUERY_URL, JAEGER_UI_URL)
  place     place the order of a JSON file (requests/*.json) with an Idempotency-Key, sent again
            while no answer comes: placed once (sagabox place -h)
  trace     print an order's trace from Jaeger as a waterfall
  sagas     list, show, abort, retry sagas, mark a compensation done (the order service's /admin API;
            env: ORDER_URL, ADMIN_TOKEN; sagabox sagas help)
  parked    list and replay the services' parked messages (sagabox parked help)
  card-keys create the card key file of the order and payment services if missing, or with
            -rotate add a new sealing key in front (flags: -file, default .data/card-keys; -id)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sagabox:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return fmt.Errorf("no command")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "up":
		return up(ctx, rest, getenv, stdout, stderr)
	case "relay":
		return runRelay(ctx, getenv, stdout)
	case "broker":
		return runBroker(ctx, rest, stdout, stderr)
	case "console":
		return consoleCmd(ctx, getenv, stdout)
	case "place":
		return placeCmd(ctx, rest, getenv, stdout, stderr)
	case "trace":
		return traceCmd(ctx, rest, getenv, stdout, stderr)
	case "sagas":
		return sagasCmd(ctx, rest, getenv, stdout, stderr)
	case "parked":
		return parkedCmd(ctx, rest, getenv, stdout, stderr)
	case "card-keys":
		return cardKeysCmd(rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage())
		return nil
	default:
		// A service of the registry: `sagabox order` …
		if c, err := registry.Lookup(cmd); err == nil && c.IsService() {
			return c.Run(ctx, getenv, stdout)
		}
		fmt.Fprint(stderr, usage())
		return fmt.Errorf("unknown command %q", cmd)
	}
}
