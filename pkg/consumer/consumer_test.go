package consumer_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/consumer"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const topic = "things"

type fixture struct {
	pool    *pgxpool.Pool
	brokers []string
	mu      sync.Mutex
	applied []string // values whose handler transaction committed
}

func setup(t *testing.T, maxAttempts int, handler func(f *fixture) consumer.Handler) *fixture {
	t.Helper()
	addr, _ := testenv.Kafka(t)
	f := &fixture{pool: testenv.Pool(t, testenv.Database(t, migrations.Payment())), brokers: []string{addr}}
	c, err := consumer.New(consumer.Config{
		Group: "test-group", Topics: []string{topic}, Brokers: f.brokers, Pool: f.pool,
		Handler: handler(f), Logger: slog.New(slog.DiscardHandler),
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, MaxAttempts: maxAttempts,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return f
}

// recording is a handler that notes every message it is given.
func recording(f *fixture) consumer.Handler {
	return func(ctx context.Context, tx pgx.Tx, m consumer.Message) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.applied = append(f.applied, string(m.Value))
		return nil
	}
}

func (f *fixture) produce(t *testing.T, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.brokers...), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func rec(id, value string) *kgo.Record {
	r := &kgo.Record{Key: []byte("k"), Value: []byte(value)}
	if id != "" {
		r.Headers = []kgo.RecordHeader{{Key: "id", Value: []byte(id)}, {Key: "eventType", Value: []byte("T")}}
	}
	return r
}

func (f *fixture) values() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.applied...)
}

func (f *fixture) committedOffset(t *testing.T) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(context.Background(), "test-group")
	if err != nil {
		return -1
	}
	var total int64
	offs.Each(func(o kadm.OffsetResponse) { total += o.At })
	return total
}

func (f *fixture) parked(t *testing.T) []string {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT error FROM parkedmessage ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	errs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return errs
}

func TestRedeliveredMessageIsAppliedOnce(t *testing.T) {
	t.Parallel()
	f := setup(t, 5, recording)
	id := uuid.NewString()
	f.produce(t, rec(id, "a"), rec(id, "a"), rec(uuid.NewString(), "b"))
	testenv.Eventually(t, 20*time.Second, func() bool { return f.committedOffset(t) == 3 }, "offsets not committed")
	if got := f.values(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("applied %v, want [a b]", got)
	}
}

func TestBadMessagesAreParkedNotDropped(t *testing.T) {
	t.Parallel()
	f := setup(t, 5, func(f *fixture) consumer.Handler {
		return func(ctx context.Context, tx pgx.Tx, m consumer.Message) error {
			switch string(m.Value) {
			case "poison":
				return consumer.Permanent(errors.New("cannot decode poison"))
			case "flaky-forever":
				return errors.New("still failing")
			}
			return recording(f)(ctx, tx, m)
		}
	})
	f.produce(t, rec("", "no id"), rec("not-a-uuid", "bad id"), rec(uuid.NewString(), "poison"),
		rec(uuid.NewString(), "flaky-forever"), rec(uuid.NewString(), "good"))
	testenv.Eventually(t, 20*time.Second, func() bool { return len(f.values()) == 1 && f.committedOffset(t) == 5 },
		"good message not applied after the bad ones")
	parked := f.parked(t)
	if len(parked) != 4 {
		t.Fatalf("parked %d messages, want 4: %q", len(parked), parked)
	}
	for i, want := range []string{`no "id" header`, "not a UUID", "cannot decode poison", "gave up after 5 attempts: still failing"} {
		if !strings.Contains(parked[i], want) {
			t.Errorf("parked[%d] = %q, want it to mention %q", i, parked[i], want)
		}
	}
	// A parked message is not journaled: a replay can still apply it.
	var journaled int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM consumedmessage`).Scan(&journaled); err != nil {
		t.Fatal(err)
	}
	if journaled != 1 {
		t.Errorf("journal has %d entries, want 1 (the good message)", journaled)
	}
}

// A transient failure is retried, and until it succeeds the offset of that
// message is not committed: a crash now would redeliver it.
func TestTransientFailureRetriedAndOffsetHeldBack(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var slowAttempts atomic.Int32
	f := setup(t, 1000, func(f *fixture) consumer.Handler {
		return func(ctx context.Context, tx pgx.Tx, m consumer.Message) error {
			if string(m.Value) == "slow" {
				slowAttempts.Add(1)
				select {
				case <-release:
				default:
					return errors.New("database hiccup")
				}
			}
			return recording(f)(ctx, tx, m)
		}
	})
	f.produce(t, rec(uuid.NewString(), "first"), rec(uuid.NewString(), "slow"))
	testenv.Eventually(t, 20*time.Second, func() bool { return slowAttempts.Load() >= 3 },
		"slow message not retried")
	if got := f.committedOffset(t); got > 1 {
		t.Fatalf("committed offset %d while the second message is still failing", got)
	}
	close(release)
	testenv.Eventually(t, 20*time.Second, func() bool { return f.committedOffset(t) == 2 }, "offset not committed after success")
	if got := f.values(); len(got) != 2 || got[1] != "slow" {
		t.Errorf("applied %v", got)
	}
}
