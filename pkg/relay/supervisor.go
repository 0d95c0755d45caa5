package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// SupervisorConfig configures a Supervisor. Connectors and Brokers are
// required; every other zero value is a working default.
type SupervisorConfig struct {
	// Connectors are the connectors to relay, one Relay (and slot) each.
	Connectors []Connector
	// ConnString returns the database URL of a connector. Default:
	// Connector.ConnString().
	ConnString func(Connector) string
	// Brokers are the Kafka bootstrap addresses. The supervisor creates one
	// producer per connector from them, ProducerOptions and ProducerOpts;
	// it owns those clients and closes them in Close.
	Brokers      []string
	ProducerOpts []kgo.Opt
	// Logger receives the supervisor's and the relays' logs. Default:
	// slog.Default().
	Logger *slog.Logger
	// Relay holds the settings shared by every relay (timeouts, topic
	// creation, tracer provider); its Connector, ConnString, Kafka and
	// Logger are set per connector.
	Relay Config
	// MinBackoff and MaxBackoff bound the wait before a failed Run is
	// restarted; it doubles after each failure and starts over after a Run
	// that lasted longer than MaxBackoff. Defaults 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
}

// Supervisor runs one Relay per connector and restarts a Run that fails
// (Postgres or Kafka down, a broker that lost records, a change that cannot
// be routed) with capped exponential backoff, for as long as its context
// lives. Every restart resumes from the slot's confirmed position, so a
// restart loses nothing. It is what `sagabox relay` and the in-process stack
// run.
type Supervisor struct {
	cfg     SupervisorConfig
	log     *slog.Logger
	relays  []*Relay
	clients []*kgo.Client
}

// NewSupervisor validates cfg and builds the relays and their producers
// (kgo connects lazily: no I/O happens). An error is a configuration error.
func NewSupervisor(cfg SupervisorConfig) (*Supervisor, error) {
	if len(cfg.Connectors) == 0 {
		return nil, errors.New("new relay supervisor: no connectors")
	}
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("new relay supervisor: no kafka brokers")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(5*time.Second, cfg.MinBackoff)
	}
	s := &Supervisor{cfg: cfg, log: cfg.Logger}
	for _, c := range cfg.Connectors {
		opts := append(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, ProducerOptions()...), cfg.ProducerOpts...)
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("new relay supervisor: connector %s: create kafka producer: %w", c.Name, err)
		}
		s.clients = append(s.clients, cl)
		rc := cfg.Relay
		rc.Connector, rc.Kafka, rc.Logger = c, cl, cfg.Logger
		if cfg.ConnString != nil {
			rc.ConnString = cfg.ConnString(c)
		}
		r, err := NewRelay(rc)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("new relay supervisor: %w", err)
		}
		s.relays = append(s.relays, r)
	}
	return s, nil
}

// Setup runs every relay's Setup: the slots exist once it returns, so rows
// committed from then on are streamed (earlier ones are published by the
// snapshot anyway). It is optional and idempotent.
func (s *Supervisor) Setup(ctx context.Context) error {
	var errs []error
	for _, r := range s.relays {
		errs = append(errs, r.Setup(ctx))
	}
	return errors.Join(errs...)
}

// Run runs every relay until ctx is cancelled, restarting failed Runs, and
// returns nil once they all stopped. It never gives up: an error is logged
// and retried.
func (s *Supervisor) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, r := range s.relays {
		wg.Go(func() { s.supervise(ctx, r) })
	}
	wg.Wait()
	return nil
}

func (s *Supervisor) supervise(ctx context.Context, r *Relay) {
	backoff := s.cfg.MinBackoff
	for {
		began := time.Now()
		err := r.Run(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > s.cfg.MaxBackoff {
			backoff = s.cfg.MinBackoff
		}
		s.log.ErrorContext(ctx, "relay failed, restarting", "connector", r.cfg.Connector.Name, "err", err, "backoff", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

// Close closes the producers the supervisor created. Call it after Run
// returned.
func (s *Supervisor) Close() {
	for _, cl := range s.clients {
		cl.Close()
	}
	s.clients = nil
}
