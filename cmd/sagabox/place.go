package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/sagabox/sagabox/api"
)

const placeUsage = `usage: sagabox place [--url URL] [--key KEY] [--attempts N] FILE

Places the order in FILE (a JSON body of POST /orders, as in requests/) with an
Idempotency-Key (--key, default a new UUID), and sends it again with the same
key when no answer came (a timeout, a lost connection, a 5xx): the order is
placed once however often it is sent. Prints the order service's answer.
  --url URL     order service (default $ORDER_URL or http://localhost:8080)
`

// placeCmd is `sagabox place FILE`: a client of POST /orders that retries
// safely.
func placeCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("place", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, placeUsage) }
	c := serviceClient(getenv, "order")
	fs.StringVar(&c.URLs[0], "url", c.URLs[0], "order service URL")
	key := fs.String("key", "", "idempotency key (default: a new UUID)")
	attempts := fs.Int("attempts", 5, "sends at most, while no answer comes")
	timeout := fs.Duration("timeout", 5*time.Second, "wait for an answer before sending again")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *attempts < 1 {
		fs.Usage()
		return errors.New("place: give one order file")
	}
	raw, err := os.ReadFile(pos[0])
	if err != nil {
		return fmt.Errorf("place: %w", err)
	}
	var body api.PlaceOrder
	if err := json.Unmarshal(raw, &body); err != nil {
		return fmt.Errorf("place: %s: %w", pos[0], err)
	}
	if *key == "" {
		*key = uuid.NewString()
	}
	c.HTTP = &http.Client{Timeout: *timeout}
	var lastErr error
	for attempt := 1; attempt <= *attempts; attempt++ {
		if attempt > 1 {
			fmt.Fprintf(stderr, "place: no answer (%v); sending again with Idempotency-Key %s\n", lastErr, *key)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt-1) * 200 * time.Millisecond):
			}
		}
		placed, replayed, err := c.PlaceOrder(ctx, body, *key)
		if code := api.StatusOf(err); err != nil && code > 0 && code < 500 {
			return fmt.Errorf("place: %w", err)
		}
		if lastErr = err; err != nil {
			continue // no answer, or a 5xx: send again with the key
		}
		if replayed {
			fmt.Fprintf(stderr, "place: the order was placed by an earlier send (Idempotency-Key %s)\n", *key)
		}
		return printJSON(stdout, placed, nil)
	}
	return fmt.Errorf("place: no answer after %d sends: %w (send again with --key %s: it places the order once)", *attempts, lastErr, *key)
}
