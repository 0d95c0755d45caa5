package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"
)

const parkedUsage = `usage: sagabox parked <command> [flags]

commands (each service's /admin/parked API):
  list [--service S] [--status PARKED|REPLAYED|all]   parked messages, oldest first (every service by default)
  replay --service S ID --reason R                    replay one message through the journal (applies at most once)
  replay --service S --all --reason R                 replay every parked message of a service, in order

services: order ($ORDER_URL, default http://localhost:8080), customer ($CUSTOMER_URL, :8081),
payment ($PAYMENT_URL, :8082). Every command: --token T (default $ADMIN_TOKEN), --json.
`

// parkedCmd is `sagabox parked …`: a client of the services' parked-message API.
func parkedCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, parkedUsage)
		if len(args) == 0 {
			return errors.New("parked: no command")
		}
		return nil
	}
	cmd, rest := args[0], args[1:]
	if cmd != "list" && cmd != "replay" {
		fmt.Fprint(stderr, parkedUsage)
		return fmt.Errorf("parked: unknown command %q", cmd)
	}
	fs := flag.NewFlagSet("parked "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		service, status, reason, token string
		all, asJSON                    bool
	)
	fs.StringVar(&service, "service", "", "order, customer or payment")
	fs.StringVar(&token, "token", tokenFromEnv(getenv("ADMIN_TOKEN")), "admin bearer token")
	fs.BoolVar(&asJSON, "json", false, "print the API's JSON answer")
	if cmd == "list" {
		fs.StringVar(&status, "status", "PARKED", "PARKED, REPLAYED or all")
	} else {
		fs.BoolVar(&all, "all", false, "replay every parked message of the service")
		fs.StringVar(&reason, "reason", "", "why (required)")
	}
	pos, err := parseInterspersed(fs, rest)
	if err != nil {
		return err
	}
	urls := map[string]string{"order": "http://localhost:8080", "customer": "http://localhost:8081", "payment": "http://localhost:8082"}
	for name := range urls {
		if v := getenv(map[string]string{"order": "ORDER_URL", "customer": "CUSTOMER_URL", "payment": "PAYMENT_URL"}[name]); v != "" {
			urls[name] = v
		}
	}
	if _, ok := urls[service]; service != "" && !ok {
		return fmt.Errorf("parked %s: --service must be order, customer or payment", cmd)
	}
	client := func(s string) adminClient {
		return adminClient{baseURL: urls[s], token: token, client: &http.Client{Timeout: 60 * time.Second}}
	}

	if cmd == "list" {
		if len(pos) != 0 {
			return fmt.Errorf("parked list: unexpected arguments %v", pos)
		}
		services := []string{"order", "customer", "payment"}
		if service != "" {
			services = []string{service}
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		if !asJSON {
			fmt.Fprintln(tw, "SERVICE\tID\tSTATUS\tTOPIC\tPARTITION@OFFSET\tEVENT\tPARKED\tERROR")
		}
		for _, s := range services {
			var resp parkedList
			raw, err := client(s).do(ctx, http.MethodGet, "/admin/parked?status="+url.QueryEscape(status)+"&limit=500", nil, &resp)
			if err != nil {
				return fmt.Errorf("%s service: %w", s, err)
			}
			if asJSON {
				fmt.Fprintf(stdout, "%s\n", raw)
				continue
			}
			for _, p := range resp.Parked {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d@%d\t%s %s\t%s\t%s\n", s, p.ID, p.Status, p.Topic, p.Partition, p.Offset,
					orDash(p.Headers["eventType"]), orDash(p.Headers["id"]), p.ParkedAt, p.Error)
			}
		}
		return tw.Flush()
	}

	switch {
	case service == "":
		return errors.New("parked replay: --service is required")
	case reason == "":
		return errors.New("parked replay: --reason is required")
	case all && len(pos) != 0, !all && len(pos) != 1:
		return errors.New("parked replay: give one message ID, or --all")
	}
	path := "/admin/parked/replay"
	if !all {
		if _, err := strconv.ParseInt(pos[0], 10, 64); err != nil {
			return fmt.Errorf("parked replay: %q is not a message ID", pos[0])
		}
		path = "/admin/parked/" + pos[0] + "/replay"
	}
	var resp parkedReplay
	raw, err := client(service).do(ctx, http.MethodPost, path, map[string]string{"reason": reason}, &resp)
	if err != nil || asJSON {
		return printRaw(stdout, raw, err)
	}
	if !all {
		fmt.Fprintf(stdout, "%s message %d replayed: %s\n", service, resp.ID, resp.ReplayOutcome)
		return nil
	}
	for _, r := range resp.Replayed {
		fmt.Fprintf(stdout, "%s message %d replayed: %s\n", service, r.ID, r.Outcome)
	}
	for _, r := range resp.Failed {
		fmt.Fprintf(stdout, "%s message %d failed: %s\n", service, r.ID, r.Error)
	}
	if len(resp.Failed) > 0 {
		return fmt.Errorf("parked replay: %d of %d failed", len(resp.Failed), len(resp.Failed)+len(resp.Replayed))
	}
	return nil
}

type (
	parkedItem struct {
		ID            int64             `json:"id"`
		Status        string            `json:"status"`
		Topic         string            `json:"topic"`
		Partition     int32             `json:"partition"`
		Offset        int64             `json:"offset"`
		Headers       map[string]string `json:"headers"`
		Error         string            `json:"error"`
		ParkedAt      string            `json:"parkedAt"`
		ReplayOutcome string            `json:"replayOutcome"`
	}
	parkedList struct {
		Parked []parkedItem `json:"parked"`
	}
	parkedReplay struct {
		parkedItem
		Replayed []struct {
			ID      int64  `json:"id"`
			Outcome string `json:"outcome"`
		} `json:"replayed"`
		Failed []struct {
			ID    int64  `json:"id"`
			Error string `json:"error"`
		} `json:"failed"`
	}
)
