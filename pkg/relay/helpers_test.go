package relay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sagabox/sagabox/internal/pgcluster"
	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/outbox"
	"github.com/sagabox/sagabox/pkg/relay"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		os.Exit(runChildRelay())
	}
	testenv.Main(m)
}

// fixture is one test's database and broker. The broker does not create
// topics on demand: the relay must.
type fixture struct {
	dbURL   string
	pool    *pgxpool.Pool
	broker  string
	kafka   *kfake.Cluster
	port    int
	logs    *logBuffer
	brokers []*kfake.Cluster
}

// newFixture creates a migrated order database and a broker.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	dbURL := testenv.Database(t, migrations.Order())
	f := &fixture{dbURL: dbURL, pool: testenv.Pool(t, dbURL), logs: &logBuffer{}}
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	f.port = port
	f.startBroker(t)
	return f
}

// startBroker starts a broker on the fixture's port with an empty data
// directory, replacing the current one (which must be closed).
func (f *fixture) startBroker(t *testing.T) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(f.port), kfake.DataDir(t.TempDir()), kfake.SyncWrites())
	if err != nil {
		t.Fatalf("start kafka: %v", err)
	}
	t.Cleanup(c.Close)
	f.kafka, f.broker = c, c.ListenAddrs()[0]
}

// logger returns a logger writing to the test output and to f.logs.
func (f *fixture) logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(&teeWriter{t: t, buf: f.logs}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines returns the log lines containing every part.
func (l *logBuffer) lines(parts ...string) []string {
	var out []string
	for line := range strings.SplitSeq(l.String(), "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok && line != "" {
			out = append(out, line)
		}
	}
	return out
}

type teeWriter struct {
	t   *testing.T
	buf *logBuffer
}

func (w *teeWriter) Write(p []byte) (int, error) {
	w.buf.mu.Lock()
	w.buf.b.Write(p)
	w.buf.mu.Unlock()
	return w.t.Output().Write(p)
}

// producer returns a kafka client built as a relay requires, closed at the
// end of the test.
func (f *fixture) producer(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(f.broker)}, relay.ProducerOptions()...), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func loadConnector(t *testing.T, name string) relay.Connector {
	t.Helper()
	c, err := relay.LoadConnector(filepath.Join(connectorsDir, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newRelay builds a relay for connector on the given slot of the test
// database.
func (f *fixture) newRelay(t *testing.T, c relay.Connector, slot string, opts ...kgo.Opt) *relay.Relay {
	t.Helper()
	c.SlotName = slot
	r, err := relay.NewRelay(relay.Config{
		Connector: c, ConnString: f.dbURL, Kafka: f.producer(t, opts...), StandbyTimeout: time.Second,
		DrainTimeout: 5 * time.Second, Logger: f.logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// slot returns a unique slot name, dropped (once inactive) at the end of
// the test; register it before starting relays so it is dropped after them.
func (f *fixture) slot(t *testing.T) string {
	t.Helper()
	name := testenv.Name("slot")
	t.Cleanup(func() {
		ctx := context.Background()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			var left int
			err := f.pool.QueryRow(ctx, `WITH d AS (SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
				WHERE slot_name = $1 AND NOT active) SELECT count(*) FROM pg_replication_slots, (SELECT count(*) FROM d) x
				WHERE slot_name = $1 AND active`, name).Scan(&left)
			if err == nil && left == 0 {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("slot %s still active at cleanup", name)
	})
	return name
}

// start runs r until the returned stop is called or the test ends; stop
// returns Run's result, which must be nil.
func start(t *testing.T, r *relay.Relay) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() { result <- r.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-result:
			case <-time.After(30 * time.Second):
				err = errors.New("relay did not stop within 30s")
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("relay: %v", err)
		}
	})
	return stop
}

// collector consumes topics from the start into memory.
type collector struct {
	mu   sync.Mutex
	recs []*kgo.Record
}

func (f *fixture) consume(t *testing.T, topics ...string) *collector {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(f.broker),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMinAge(50*time.Millisecond),
		kgo.MetadataMaxAge(200*time.Millisecond),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				col.mu.Lock()
				col.recs = append(col.recs, r)
				col.mu.Unlock()
			})
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		cl.Close()
	})
	return col
}

func (c *collector) records() []*kgo.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.recs)
}

// ids returns the distinct "id" headers seen and the number of records.
func (c *collector) ids() (map[string]int, int) {
	recs := c.records()
	ids := map[string]int{}
	for _, r := range recs {
		ids[header(r, "id")]++
	}
	return ids, len(recs)
}

// has reports whether every event's id was consumed.
func (c *collector) has(events ...outbox.Event) bool {
	ids, _ := c.ids()
	for _, e := range events {
		if ids[e.ID.String()] == 0 {
			return false
		}
	}
	return true
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// write commits events in one transaction and returns the WAL position
// just before the commit: a position confirming the transaction exceeds it.
func write(t *testing.T, ctx context.Context, pool *pgxpool.Pool, events ...outbox.Event) pglogrepl.LSN {
	t.Helper()
	var before pglogrepl.LSN
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := outbox.Write(ctx, tx, events...); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()`).Scan(&before)
	})
	if err != nil {
		t.Fatalf("write outbox: %v", err)
	}
	return before
}

func event(aggregateType, aggregateID, typ string) outbox.Event {
	return outbox.Event{
		ID: uuid.New(), AggregateType: aggregateType, AggregateID: aggregateID, Type: typ,
		Payload: []byte(fmt.Sprintf(`{"saga": %q, "type": %q}`, aggregateID, typ)),
	}
}

// checkpointEnds reads the end offsets the checkpoint of slot records for
// topic, by partition.
func (f *fixture) checkpointEnds(t *testing.T, slot, topic string) map[string]int64 {
	t.Helper()
	var ends map[string]int64
	err := f.pool.QueryRow(context.Background(), `SELECT coalesce(topics->$2->'end', '{}') FROM relay_checkpoint WHERE slot_name = $1`, slot, topic).Scan(&ends)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		t.Fatal(err)
	}
	return ends
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
