package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/sagabox/sagabox/api"
	"github.com/sagabox/sagabox/registry"
)

const parkedUsage = `usage: sagabox parked <command> [flags]

commands (each service's /admin/parked API):
  list [--service S] [--status PARKED|REPLAYED|all]   parked messages, oldest first (every service by default)
  replay --service S ID --reason R                    replay one message through the journal (applies at most once)
  replay --service S --all --reason R                 replay every parked message of a service, in order

services: the registry's (order, customer, payment), each at $<SERVICE>_URL (ORDER_URL …) or its
local port. Every command: --token T (default $ADMIN_TOKEN), --json.
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
	fs.StringVar(&service, "service", "", strings.Join(registry.ServiceNames(), ", "))
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
	if service != "" && !slices.Contains(registry.ServiceNames(), service) {
		return fmt.Errorf("parked %s: --service must be one of %s", cmd, strings.Join(registry.ServiceNames(), ", "))
	}
	client := func(s string) api.Client {
		c := serviceClient(getenv, s)
		c.Token = token
		return c
	}

	if cmd == "list" {
		if len(pos) != 0 {
			return fmt.Errorf("parked list: unexpected arguments %v", pos)
		}
		services := registry.ServiceNames()
		if service != "" {
			services = []string{service}
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		if !asJSON {
			fmt.Fprintln(tw, "SERVICE\tID\tSTATUS\tTOPIC\tPARTITION@OFFSET\tEVENT\tPARKED\tERROR")
		}
		for _, s := range services {
			resp, err := client(s).Parked(ctx, url.Values{"status": {status}, "limit": {"500"}})
			if err != nil {
				return adminErr(err)
			}
			if asJSON {
				if err := printJSON(stdout, resp, nil); err != nil {
					return err
				}
				continue
			}
			for _, p := range resp.Parked {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d@%d\t%s %s\t%s\t%s\n", s, p.ID, p.Status, p.Topic, p.Partition, p.Offset,
					orDash(p.Headers["eventType"]), orDash(p.Headers["id"]), stamp(p.ParkedAt), p.Error)
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
	if !all {
		id, err := strconv.ParseInt(pos[0], 10, 64)
		if err != nil {
			return fmt.Errorf("parked replay: %q is not a message ID", pos[0])
		}
		p, err := client(service).ReplayParked(ctx, id, reason)
		if err != nil || asJSON {
			return printJSON(stdout, p, adminErr(err))
		}
		fmt.Fprintf(stdout, "%s message %d replayed: %s\n", service, p.ID, p.ReplayOutcome)
		return nil
	}
	resp, err := client(service).ReplayAllParked(ctx, reason)
	if err != nil || asJSON {
		return printJSON(stdout, resp, adminErr(err))
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
