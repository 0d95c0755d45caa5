// Package broker runs the embedded Kafka-protocol broker of the local system
// (franz-go's kfake) with its data persisted to disk: every produced batch
// and every group commit is fsynced before it is acknowledged, and topics
// are written down when they are created.
//
// What its data directory keeps across a kill (SIGKILL, power loss) — see
// the tests: explicitly created topics, every acknowledged record and every
// committed group offset. What it does not keep: a topic that was only
// auto-created (kfake writes those down on a clean shutdown only), so
// auto-creation is off here and every component creates the topics it uses
// (platform.EnsureTopics, the relay). A data directory the broker cannot
// load at all is moved aside and the broker starts empty; the relay then
// re-publishes the outboxes and the consumers re-read from the start.
package broker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Config configures the broker.
type Config struct {
	// Dir is the data directory.
	Dir string
	// Port to listen on (127.0.0.1 only: kfake binds the loopback); 0 picks one.
	Port int
	// Partitions of topics created without a count (default 4).
	Partitions int
	// Logger receives the broker's warnings and errors.
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.Partitions == 0 {
		c.Partitions = 4
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Start starts the broker on cfg.Dir. A data directory that cannot be
// loaded is renamed to <Dir>.unreadable-<time> and the broker starts empty,
// saying so at ERROR level.
func Start(cfg Config) (*kfake.Cluster, error) {
	cfg.defaults()
	c, err := start(cfg)
	if err == nil {
		return c, nil
	}
	if _, statErr := os.Stat(cfg.Dir); statErr != nil {
		return nil, err // nothing to set aside: the error is not the data
	}
	aside := fmt.Sprintf("%s.unreadable-%s", cfg.Dir, time.Now().UTC().Format("20060102T150405Z"))
	if rerr := os.Rename(cfg.Dir, aside); rerr != nil {
		return nil, fmt.Errorf("%w (and moving the data aside failed: %w)", err, rerr)
	}
	cfg.Logger.Error("broker data unreadable; moved aside, starting empty (the relay re-publishes the outboxes)",
		"dir", cfg.Dir, "moved_to", aside, "err", err)
	return start(cfg)
}

func start(cfg Config) (*kfake.Cluster, error) {
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DataDir(cfg.Dir),
		kfake.SyncWrites(),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.WithLogger(slogLogger{cfg.Logger}),
	}
	if cfg.Port != 0 {
		opts = append(opts, kfake.Ports(cfg.Port))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start kafka broker (data %s): %w", cfg.Dir, err)
	}
	return c, nil
}

// Run starts the broker and serves until ctx ends, then shuts it down
// cleanly (which writes its whole state).
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	c, err := Start(cfg)
	if err != nil {
		return err
	}
	cfg.Logger.InfoContext(ctx, "kafka broker listening", "addrs", c.ListenAddrs(), "dir", cfg.Dir)
	<-ctx.Done()
	c.Close()
	cfg.Logger.InfoContext(context.WithoutCancel(ctx), "kafka broker stopped")
	return nil
}

// slogLogger passes kfake's warnings and errors to slog.
type slogLogger struct{ log *slog.Logger }

func (l slogLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		l.log.Error("kfake: " + fmt.Sprintf(format, args...))
	case kfake.LogLevelWarn:
		l.log.Warn("kfake: " + fmt.Sprintf(format, args...))
	}
}
