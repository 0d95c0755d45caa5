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
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

const sagasUsage = `usage: sagabox sagas <command> [flags]

commands (the order service's /admin API; ORDER_URL, default http://localhost:8080):
  list [--stuck] [--status S] [--step S] [--older-than D] [--limit N] [--after CURSOR]
                                   sagas, newest first
  show ID                          one saga with its history
  abort ID --reason R              force compensation of a running saga
  retry ID [--reason R]            send the message the saga waits for again, now
  compensate ID --step S --reason R
                                   mark the compensation the saga waits for as done by hand

every command: --url URL (default $ORDER_URL), --token T (default $ADMIN_TOKEN; the
first entry's token if it is a name:token list), --json (print the API's answer)
`

// sagasCmd is `sagabox sagas …`: a client of the order service's admin API.
func sagasCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, sagasUsage)
		if len(args) == 0 {
			return errors.New("sagas: no command")
		}
		return nil
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet("sagas "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		c         adminClient
		asJSON    bool
		reason    string
		step      string
		status    string
		stuck     bool
		olderThan time.Duration
		limit     int
		after     string
	)
	baseURL := getenv("ORDER_URL")
	if baseURL == "" {
		baseURL = "http://localhost:8080"
	}
	fs.StringVar(&c.baseURL, "url", baseURL, "order service URL")
	fs.StringVar(&c.token, "token", tokenFromEnv(getenv("ADMIN_TOKEN")), "admin bearer token")
	fs.BoolVar(&asJSON, "json", false, "print the API's JSON answer")
	switch cmd {
	case "list":
		fs.BoolVar(&stuck, "stuck", false, "only sagas past their deadline or ABORTING for too long")
		fs.StringVar(&status, "status", "", "STARTED, SUCCEEDED, ABORTING or ABORTED")
		fs.StringVar(&step, "step", "", "current step")
		fs.DurationVar(&olderThan, "older-than", 0, "only sagas created longer ago than this")
		fs.IntVar(&limit, "limit", 0, "page size (default 50, at most 500)")
		fs.StringVar(&after, "after", "", "continue after this cursor (printed at the end of a page)")
	case "abort", "retry":
		fs.StringVar(&reason, "reason", "", "why (required for abort)")
	case "compensate":
		fs.StringVar(&step, "step", "", "the step whose compensation is done (required)")
		fs.StringVar(&reason, "reason", "", "why (required)")
	case "show":
	default:
		fmt.Fprint(stderr, sagasUsage)
		return fmt.Errorf("sagas: unknown command %q", cmd)
	}
	pos, err := parseInterspersed(fs, rest)
	if err != nil {
		return err
	}
	c.client = &http.Client{Timeout: 30 * time.Second}

	if cmd == "list" {
		if len(pos) != 0 {
			return fmt.Errorf("sagas list: unexpected arguments %v", pos)
		}
		q := url.Values{}
		if stuck {
			q.Set("stuck", "true")
		}
		for k, v := range map[string]string{"status": status, "step": step, "after": after} {
			if v != "" {
				q.Set(k, v)
			}
		}
		if olderThan != 0 {
			q.Set("older_than", olderThan.String())
		}
		if limit != 0 {
			q.Set("limit", strconv.Itoa(limit))
		}
		path := "/admin/sagas"
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		var resp listAnswer
		raw, err := c.do(ctx, http.MethodGet, path, nil, &resp)
		if err != nil || asJSON {
			return printRaw(stdout, raw, err)
		}
		printList(stdout, resp, args)
		return nil
	}

	if len(pos) != 1 {
		return fmt.Errorf("sagas %s: want exactly one saga ID, got %d arguments", cmd, len(pos))
	}
	id := url.PathEscape(pos[0])
	if cmd == "show" {
		var resp detailAnswer
		raw, err := c.do(ctx, http.MethodGet, "/admin/sagas/"+id, nil, &resp)
		if err != nil || asJSON {
			return printRaw(stdout, raw, err)
		}
		printDetail(stdout, resp)
		return nil
	}
	body := map[string]string{}
	switch cmd {
	case "abort":
		if reason == "" {
			return errors.New("sagas abort: --reason is required")
		}
	case "compensate":
		if step == "" || reason == "" {
			return errors.New("sagas compensate: --step and --reason are required")
		}
		body["step"] = step
	}
	if reason != "" {
		body["reason"] = reason
	}
	var resp actionAnswer
	raw, err := c.do(ctx, http.MethodPost, "/admin/sagas/"+id+"/"+cmd, body, &resp)
	if err != nil || asJSON {
		return printRaw(stdout, raw, err)
	}
	s := resp.Saga
	fmt.Fprintf(stdout, "saga %s: %s, step %s %s, attempt %d, version %d\n",
		s.ID, s.Status, s.CurrentStep, s.StepStatus[s.CurrentStep], s.Attempt, s.Version)
	return nil
}

// tokenFromEnv returns the token of ADMIN_TOKEN as the services read it: a
// bare token, or the token of the first name:token entry.
func tokenFromEnv(v string) string {
	first, _, _ := strings.Cut(v, ",")
	if _, token, ok := strings.Cut(first, ":"); ok {
		return strings.TrimSpace(token)
	}
	return strings.TrimSpace(first)
}

// parseInterspersed parses flags that may come before or after the
// positional arguments (`abort ID --reason x` as well as `abort --reason x
// ID`), which flag.Parse alone does not.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

type adminClient struct {
	baseURL, token string
	client         *http.Client
}

// do sends a request to the admin API and decodes a 2xx answer into out; it
// returns the raw answer too. Any other status is an error carrying the
// API's {"error": …}.
func (c adminClient) do(ctx context.Context, method, path string, body any, out any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.baseURL, "/")+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(raw))
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		err := fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)
		if resp.StatusCode == http.StatusUnauthorized {
			err = fmt.Errorf("%w (set ADMIN_TOKEN or --token)", err)
		}
		return nil, err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return raw, nil
}

func printRaw(w io.Writer, raw []byte, err error) error {
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if json.Indent(&buf, raw, "", "  ") != nil {
		buf.Reset()
		buf.Write(raw)
	}
	buf.WriteByte('\n')
	_, err = w.Write(buf.Bytes())
	return err
}

// The API's answers, as far as the CLI prints them.
type (
	sagaAnswer struct {
		ID          string            `json:"id"`
		Type        string            `json:"type"`
		Status      string            `json:"status"`
		CurrentStep string            `json:"currentStep"`
		StepStatus  map[string]string `json:"stepStatus"`
		Attempt     int               `json:"attempt"`
		Deadline    string            `json:"deadline"`
		StatusSince string            `json:"statusSince"`
		Version     int               `json:"version"`
		CreatedAt   string            `json:"createdAt"`
	}
	listAnswer struct {
		Sagas []sagaAnswer `json:"sagas"`
		Next  string       `json:"next"`
	}
	detailAnswer struct {
		Saga    sagaAnswer `json:"saga"`
		OrderID int64      `json:"orderId"`
		History []struct {
			Version    int    `json:"version"`
			At         string `json:"at"`
			Step       string `json:"step"`
			From       string `json:"from"`
			To         string `json:"to"`
			SagaStatus string `json:"sagaStatus"`
			Attempt    int    `json:"attempt"`
			Cause      struct {
				Kind      string `json:"kind"`
				EventID   string `json:"eventId"`
				Topic     string `json:"topic"`
				EventType string `json:"eventType"`
				Actor     string `json:"actor"`
				Action    string `json:"action"`
				Reason    string `json:"reason"`
			} `json:"cause"`
		} `json:"history"`
	}
	actionAnswer struct {
		Saga sagaAnswer `json:"saga"`
	}
)

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printList(w io.Writer, l listAnswer, args []string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tSTEP\tSTEP STATUS\tATTEMPT\tDEADLINE\tCREATED")
	for _, s := range l.Sagas {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.ID, s.Status, s.CurrentStep, s.StepStatus[s.CurrentStep],
			s.Attempt, orDash(s.Deadline), s.CreatedAt)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d sagas\n", len(l.Sagas))
	if l.Next != "" {
		fmt.Fprintf(w, "more: sagabox sagas %s --after %s\n", strings.Join(withoutAfter(args), " "), l.Next)
	}
}

// withoutAfter drops a previous --after flag from args.
func withoutAfter(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--after" || a == "-after":
			i++
		case strings.HasPrefix(a, "--after=") || strings.HasPrefix(a, "-after="):
		default:
			out = append(out, a)
		}
	}
	return out
}

func printDetail(w io.Writer, d detailAnswer) {
	s := d.Saga
	fmt.Fprintf(w, "saga     %s (%s), order %d\n", s.ID, s.Type, d.OrderID)
	fmt.Fprintf(w, "status   %s since %s, version %d\n", s.Status, s.StatusSince, s.Version)
	fmt.Fprintf(w, "waits    %s %s, attempt %d, deadline %s\n", s.CurrentStep, s.StepStatus[s.CurrentStep], s.Attempt, orDash(s.Deadline))
	var steps []string
	for name, st := range s.StepStatus {
		steps = append(steps, name+"="+st)
	}
	slices.Sort(steps)
	fmt.Fprintf(w, "steps    %s\n\n", strings.Join(steps, " "))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tAT\tSTEP\tCHANGE\tSAGA\tATTEMPT\tCAUSE")
	for _, h := range d.History {
		c := h.Cause
		cause := c.Kind
		switch c.Kind {
		case "reply":
			cause += fmt.Sprintf(" %s %s %s", c.Topic, c.EventType, c.EventID)
		case "operator":
			cause += fmt.Sprintf(" %s by %s", c.Action, c.Actor)
			if c.Reason != "" {
				cause += fmt.Sprintf(": %q", c.Reason)
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s → %s\t%s\t%d\t%s\n", h.Version, h.At, h.Step, orDash(h.From), h.To, h.SagaStatus, h.Attempt, cause)
	}
	tw.Flush()
}
