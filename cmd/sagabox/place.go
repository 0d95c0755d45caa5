package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
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
	baseURL := getenv("ORDER_URL")
	if baseURL == "" {
		baseURL = "http://localhost:8080"
	}
	url := fs.String("url", baseURL, "order service URL")
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
	body, err := os.ReadFile(pos[0])
	if err != nil {
		return fmt.Errorf("place: %w", err)
	}
	if *key == "" {
		*key = uuid.NewString()
	}
	client := &http.Client{Timeout: *timeout}
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
		var (
			code     int
			answer   []byte
			replayed bool
		)
		code, answer, replayed, lastErr = postOrder(ctx, client, strings.TrimRight(*url, "/")+"/orders", *key, body)
		if lastErr != nil || code >= 500 {
			if lastErr == nil {
				lastErr = fmt.Errorf("%d %s", code, bytes.TrimSpace(answer))
			}
			continue
		}
		if code/100 != 2 {
			var e struct {
				Error string `json:"error"`
			}
			_ = json.Unmarshal(answer, &e)
			return fmt.Errorf("place: %d: %s", code, e.Error)
		}
		if replayed {
			fmt.Fprintf(stderr, "place: the order was placed by an earlier send (Idempotency-Key %s)\n", *key)
		}
		fmt.Fprintf(stdout, "%s\n", bytes.TrimSpace(answer))
		return nil
	}
	return fmt.Errorf("place: no answer after %d sends: %w (send again with --key %s: it places the order once)", *attempts, lastErr, *key)
}

func postOrder(ctx context.Context, client *http.Client, url, key string, body []byte) (int, []byte, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, false, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, false, err
	}
	return resp.StatusCode, answer, resp.Header.Get("Idempotent-Replayed") == "true", nil
}
