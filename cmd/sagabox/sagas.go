package main

import (
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

	"github.com/google/uuid"

	"github.com/sagabox/sagabox/api"
	"github.com/sagabox/sagabox/pkg/saga/sagaapi"
	"github.com/sagabox/sagabox/registry"
)

const sagasUsage = `usage: sagabox sagas <command> [flags]

commands (the order service's /admin API; ORDER_URL, default http://localhost:8080):
  list [--stuck] [--status S] [--type T] [--step S] [--older-than D] [--limit N] [--after CURSOR]
                                   sagas, newest first
  show ID                          one saga with its history
  abort ID --reason R              force compensation of a running saga
  retry ID [--step S] [--reason R] send the message the saga waits for again, now (every
                                   waiting step's, or --step's alone)
  compensate ID --step S --reason R
                                   mark the compensation the saga waits for as done by hand
  types                            the saga types and versions the order service runs, with
                                   their steps (parallel ones marked with what they wait for)

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
		asJSON    bool
		reason    string
		step      string
		sagaType  string
		status    string
		stuck     bool
		olderThan time.Duration
		limit     int
		after     string
	)
	c := serviceClient(getenv, "order")
	fs.StringVar(&c.URLs[0], "url", c.URLs[0], "order service URL")
	fs.StringVar(&c.Token, "token", tokenFromEnv(getenv("ADMIN_TOKEN")), "admin bearer token")
	fs.BoolVar(&asJSON, "json", false, "print the API's JSON answer")
	switch cmd {
	case "list":
		fs.BoolVar(&stuck, "stuck", false, "only sagas past their deadline or ABORTING for too long")
		fs.StringVar(&status, "status", "", "STARTED, SUCCEEDED, ABORTING or ABORTED")
		fs.StringVar(&sagaType, "type", "", "saga type (sagabox sagas types lists them)")
		fs.StringVar(&step, "step", "", "a step the saga waits for (or last waited for)")
		fs.DurationVar(&olderThan, "older-than", 0, "only sagas created longer ago than this")
		fs.IntVar(&limit, "limit", 0, "page size (default 50, at most 500)")
		fs.StringVar(&after, "after", "", "continue after this cursor (printed at the end of a page)")
	case "abort":
		fs.StringVar(&reason, "reason", "", "why (required)")
	case "retry":
		fs.StringVar(&reason, "reason", "", "why")
		fs.StringVar(&step, "step", "", "the one waiting step to send again (default: every waiting step)")
	case "compensate":
		fs.StringVar(&step, "step", "", "the step whose compensation is done (required)")
		fs.StringVar(&reason, "reason", "", "why (required)")
	case "show", "types":
	default:
		fmt.Fprint(stderr, sagasUsage)
		return fmt.Errorf("sagas: unknown command %q", cmd)
	}
	pos, err := parseInterspersed(fs, rest)
	if err != nil {
		return err
	}

	switch cmd {
	case "list":
		if len(pos) != 0 {
			return fmt.Errorf("sagas list: unexpected arguments %v", pos)
		}
		q := url.Values{}
		if stuck {
			q.Set("stuck", "true")
		}
		for k, v := range map[string]string{"status": status, "step": step, "type": sagaType, "after": after} {
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
		l, err := c.Sagas(ctx, q)
		if err != nil || asJSON {
			return printJSON(stdout, l, adminErr(err))
		}
		printList(stdout, l, args)
		return nil
	case "types":
		ts, err := c.SagaTypes(ctx)
		if err != nil || asJSON {
			return printJSON(stdout, ts, adminErr(err))
		}
		for _, t := range ts {
			var steps []string
			for _, st := range t.Steps {
				name := st.Name
				if len(st.After) != 1 || len(steps) == 0 || st.After[0] != t.Steps[len(steps)-1].Name {
					name += " (after " + strings.Join(st.After, ", ") + ")"
					if len(st.After) == 0 {
						name = st.Name + " (at the start)"
					}
				}
				steps = append(steps, name)
			}
			var notes []string
			if t.Latest {
				notes = append(notes, "new sagas")
			}
			if t.ForwardOnly {
				notes = append(notes, "forward only")
			}
			note := ""
			if len(notes) > 0 {
				note = " [" + strings.Join(notes, ", ") + "]"
			}
			fmt.Fprintf(stdout, "%s v%d%s: %s\n", t.Type, t.Version, note, strings.Join(steps, " → "))
		}
		return nil
	}

	if len(pos) != 1 {
		return fmt.Errorf("sagas %s: want exactly one saga ID, got %d arguments", cmd, len(pos))
	}
	id, err := uuid.Parse(pos[0])
	if err != nil {
		return fmt.Errorf("sagas %s: %q is not a saga ID", cmd, pos[0])
	}
	if cmd == "show" {
		d, err := c.Saga(ctx, id)
		if err != nil || asJSON {
			return printJSON(stdout, d, adminErr(err))
		}
		printDetail(stdout, d)
		return nil
	}
	switch cmd {
	case "abort":
		if reason == "" {
			return errors.New("sagas abort: --reason is required")
		}
	case "compensate":
		if step == "" || reason == "" {
			return errors.New("sagas compensate: --step and --reason are required")
		}
	}
	a, err := c.SagaAction(ctx, id, cmd, sagaapi.ActionRequest{Step: step, Reason: reason})
	if err != nil || asJSON {
		return printJSON(stdout, a, adminErr(err))
	}
	s := a.Saga
	fmt.Fprintf(stdout, "saga %s: %s, step %s %s, attempt %d, version %d\n",
		s.ID, s.Status, s.CurrentStep, s.StepStatus[s.CurrentStep], s.Attempt, s.Version)
	return nil
}

// serviceClient is the typed client of service name of the registry, at
// $<NAME>_URL or its local default address, with a 60 s timeout.
func serviceClient(getenv func(string) string, name string) api.Client {
	c, _ := registry.Lookup(name)
	base := getenv(c.URLEnv())
	if base == "" {
		base = "http://localhost:" + strconv.Itoa(c.Port)
	}
	return api.Client{Name: name, URLs: []string{base}, HTTP: &http.Client{Timeout: 60 * time.Second}}
}

// adminErr says how to give a token when the answer was 401.
func adminErr(err error) error {
	if api.StatusOf(err) == http.StatusUnauthorized {
		return fmt.Errorf("%w (set ADMIN_TOKEN or --token)", err)
	}
	return err
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

// printJSON prints the API's answer v as indented JSON, unless err.
func printJSON(w io.Writer, v any, err error) error {
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// stamp prints a time as the API gives it: UTC, to the millisecond.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func deadline(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return stamp(*t)
}

func printList(w io.Writer, l sagaapi.List, args []string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tSTATUS\tSTEP\tSTEP STATUS\tATTEMPT\tDEADLINE\tCREATED")
	for _, s := range l.Sagas {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.ID, s.Type, s.Status, s.CurrentStep, s.StepStatus[s.CurrentStep],
			s.Attempt, deadline(s.Deadline), stamp(s.CreatedAt))
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

func printDetail(w io.Writer, d sagaapi.Detail) {
	s := d.Saga
	var order string
	if o, ok := d.Extra["orderId"]; ok {
		order = ", order " + string(o)
	}
	fmt.Fprintf(w, "saga     %s (%s)%s\n", s.ID, s.Type, order)
	fmt.Fprintf(w, "status   %s since %s, version %d\n", s.Status, stamp(s.StatusSince), s.Version)
	fmt.Fprintf(w, "waits    %s %s, attempt %d, deadline %s\n", s.CurrentStep, s.StepStatus[s.CurrentStep], s.Attempt, deadline(s.Deadline))
	var steps []string
	for name, st := range s.StepStatus {
		steps = append(steps, name+"="+string(st))
	}
	slices.Sort(steps)
	fmt.Fprintf(w, "steps    %s\n\n", strings.Join(steps, " "))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tAT\tSTEP\tCHANGE\tSAGA\tATTEMPT\tCAUSE")
	for _, h := range d.History {
		c := h.Cause
		cause := string(c.Kind)
		switch c.Kind {
		case "reply":
			cause += fmt.Sprintf(" %s %s %s", c.Topic, c.EventType, c.EventID)
		case "operator":
			cause += fmt.Sprintf(" %s by %s", c.Action, c.Actor)
			if c.Reason != "" {
				cause += fmt.Sprintf(": %q", c.Reason)
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s → %s\t%s\t%d\t%s\n", h.Version, stamp(h.At), h.Step, orDash(string(h.From)), h.To, h.SagaStatus, h.Attempt, cause)
	}
	tw.Flush()
}
