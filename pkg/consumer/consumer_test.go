package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sagabox/sagabox/internal/pgcluster"
	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/consumer"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	topic = "things"
	group = "test-group"
)

// fixture is a database, a broker with topic (4 partitions) and the values
// the handlers applied.
type fixture struct {
	t       *testing.T
	pool    *pgxpool.Pool
	brokers []string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	addr, _ := testenv.Kafka(t)
	f := &fixture{t: t, pool: testenv.Pool(t, testenv.Database(t, migrations.Payment())), brokers: []string{addr}}
	f.createTopic()
	f.createApplied()
	return f
}

func (f *fixture) createApplied() {
	f.t.Helper()
	if _, err := f.pool.Exec(context.Background(), `CREATE TABLE applied (seq bigserial PRIMARY KEY, value text NOT NULL)`); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) createTopic() {
	f.t.Helper()
	cl := f.client()
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), 4, -1, nil, topic); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) client(opts ...kgo.Opt) *kgo.Client {
	f.t.Helper()
	cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(f.brokers...))...)
	if err != nil {
		f.t.Fatal(err)
	}
	return cl
}

// start runs a consumer of group with cfg's handler settings until the test
// ends or the returned stop is called.
func (f *fixture) start(cfg consumer.Config) (stop func()) {
	f.t.Helper()
	if cfg.Group == "" {
		cfg.Group = group
	}
	cfg.Topics = []string{topic}
	cfg.Pool = f.pool
	cfg.Logger = slog.New(slog.DiscardHandler)
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 10*time.Millisecond
	}
	cfg.CommitInterval = 50 * time.Millisecond
	c, err := consumer.New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	cl := f.client(c.Opts()...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, cl) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				f.t.Errorf("Run: %v", err)
			}
			cl.Close()
		})
	}
	f.t.Cleanup(stop)
	return stop
}

// recording applies a message: its value is written in the handler's
// transaction, so values() are exactly the committed effects.
func (f *fixture) recording(ctx context.Context, tx pgx.Tx, m consumer.Message) error {
	_, err := tx.Exec(ctx, `INSERT INTO applied (value) VALUES ($1)`, string(m.Value))
	return err
}

// produce writes recs to topic (partition 0 unless a record says otherwise).
func (f *fixture) produce(recs ...*kgo.Record) {
	f.t.Helper()
	cl := f.client(kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		f.t.Fatal(err)
	}
}

func rec(id, value string) *kgo.Record {
	r := &kgo.Record{Key: []byte("k"), Value: []byte(value)}
	if id != "" {
		r.Headers = []kgo.RecordHeader{{Key: "id", Value: []byte(id)}, {Key: "eventType", Value: []byte("T")}}
	}
	return r
}

func onPartition(p int32, r *kgo.Record) *kgo.Record { r.Partition = p; return r }

func (f *fixture) values() []string {
	rows, err := f.pool.Query(context.Background(), `SELECT value FROM applied ORDER BY seq`)
	if err != nil {
		f.t.Fatal(err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		f.t.Fatal(err)
	}
	return vs
}

func (f *fixture) sortedValues() []string {
	v := f.values()
	slices.Sort(v)
	return v
}

// committed returns the sum of group's committed offsets over topic.
func (f *fixture) committed(group string) int64 {
	f.t.Helper()
	cl := f.client()
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(context.Background(), group)
	if err != nil {
		return -1
	}
	var total int64
	offs.Each(func(o kadm.OffsetResponse) { total += o.At })
	return total
}

func (f *fixture) parked() []string {
	f.t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT error FROM parkedmessage ORDER BY id`)
	if err != nil {
		f.t.Fatal(err)
	}
	errs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		f.t.Fatal(err)
	}
	return errs
}

func TestRedeliveredMessageIsAppliedOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(consumer.Config{Handler: f.recording})
	id := uuid.NewString()
	f.produce(rec(id, "a"), rec(id, "a"), rec(uuid.NewString(), "b"))
	testenv.Eventually(t, 20*time.Second, func() bool { return f.committed(group) == 3 }, "offsets not committed")
	if diff := cmp.Diff([]string{"a", "b"}, f.values()); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
}

// The journal is keyed by (consumer, event id): a second consumer of the
// same message in the same database applies it too, once.
func TestJournalIsPerConsumer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(consumer.Config{Group: "first", Handler: f.recording})
	f.start(consumer.Config{Group: "second", Handler: f.recording})
	id := uuid.NewString()
	f.produce(rec(id, "x"), rec(id, "x"))
	testenv.Eventually(t, 20*time.Second, func() bool { return f.committed("first") == 2 && f.committed("second") == 2 },
		"offsets not committed")
	if diff := cmp.Diff([]string{"x", "x"}, f.values()); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
}

// badRecords are records a consumer parks (no id header, an id that is not
// a UUID, a handler's permanent error, a handler failing forever) and one
// good one, in that order.
func badRecords() []*kgo.Record {
	return []*kgo.Record{rec("", "no id"), rec("not-a-uuid", "bad id"), rec(uuid.NewString(), "poison"),
		rec(uuid.NewString(), "flaky-forever"), rec(uuid.NewString(), "good")}
}

func TestBadMessagesAreParkedNotDropped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(consumer.Config{MaxAttempts: 5, Handler: func(ctx context.Context, tx pgx.Tx, m consumer.Message) error {
		switch string(m.Value) {
		case "poison":
			return consumer.Permanent(errors.New("cannot decode poison"))
		case "flaky-forever":
			return errors.New("still failing")
		}
		return f.recording(ctx, tx, m)
	}})
	f.produce(badRecords()...)
	testenv.Eventually(t, 20*time.Second, func() bool { return len(f.values()) == 1 && f.committed(group) == 5 },
		"good message not applied after the bad ones")
	parked := f.parked()
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
	f := newFixture(t)
	release := make(chan struct{})
	var slowAttempts atomic.Int32
	f.start(consumer.Config{MaxAttempts: 1000, Handler: func(ctx context.Context, tx pgx.Tx, m consumer.Message) error {
		if string(m.Value) == "slow" {
			slowAttempts.Add(1)
			select {
			case <-release:
			default:
				return errors.New("database hiccup")
			}
		}
		return f.recording(ctx, tx, m)
	}})
	f.produce(rec(uuid.NewString(), "first"), rec(uuid.NewString(), "slow"))
	testenv.Eventually(t, 20*time.Second, func() bool { return slowAttempts.Load() >= 3 && f.committed(group) == 1 },
		"slow message not retried")
	// Retries go on; the first record's offset is committed, the failing one's is not.
	n := slowAttempts.Load()
	testenv.Eventually(t, 20*time.Second, func() bool { return slowAttempts.Load() > n+2 }, "retries stopped")
	if got := f.committed(group); got != 1 {
		t.Fatalf("committed offset %d while the second message is still failing", got)
	}
	close(release)
	testenv.Eventually(t, 20*time.Second, func() bool { return f.committed(group) == 2 }, "offset not committed after success")
	if diff := cmp.Diff([]string{"first", "slow"}, f.values()); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
}

// A record in retry holds back its own partition only: records of the other
// partitions are applied meanwhile, and records behind it on its partition
// wait, in order.
func TestRetryHoldsBackOnlyItsPartition(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	release := make(chan struct{})
	var stuck atomic.Bool
	f.start(consumer.Config{MaxAttempts: 1 << 30, Handler: func(ctx context.Context, tx pgx.Tx, m consumer.Message) error {
		if string(m.Value) == "p0-stuck" {
			stuck.Store(true)
			select {
			case <-release:
			default:
				return errors.New("not yet")
			}
		}
		return f.recording(ctx, tx, m)
	}})
	f.produce(onPartition(0, rec(uuid.NewString(), "p0-stuck")), onPartition(0, rec(uuid.NewString(), "p0-after")))
	testenv.Eventually(t, 20*time.Second, stuck.Load, "stuck record never tried")
	var want []string
	for p := int32(1); p < 4; p++ {
		for i := range 3 {
			v := string(rune('a'+p)) + string(rune('0'+i))
			want = append(want, v)
			f.produce(onPartition(p, rec(uuid.NewString(), v)))
		}
	}
	testenv.Eventually(t, 20*time.Second, func() bool { return len(f.values()) == len(want) },
		"other partitions stalled behind the stuck one: applied %v", f.values())
	if slices.Contains(f.values(), "p0-after") {
		t.Fatal("a record behind the stuck one on its partition was applied before it")
	}
	close(release)
	testenv.Eventually(t, 20*time.Second, func() bool { return len(f.values()) == len(want)+2 }, "partition 0 never resumed")
	got := f.values()
	if i, j := slices.Index(got, "p0-stuck"), slices.Index(got, "p0-after"); i > j {
		t.Errorf("partition 0 applied out of order: %v", got)
	}
}

// A record in endless retry does not block a rebalance: a second member
// joins, gets partitions and applies their records, and the record in retry
// is applied exactly once in the end.
func TestRetryDoesNotBlockRebalance(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	release := make(chan struct{})
	var tries atomic.Int32
	handler := func(ctx context.Context, tx pgx.Tx, m consumer.Message) error {
		if string(m.Value) == "stuck" {
			tries.Add(1)
			select {
			case <-release:
			default:
				return errors.New("not yet")
			}
		}
		return f.recording(ctx, tx, m)
	}
	f.start(consumer.Config{MaxAttempts: 1 << 30, Handler: handler})
	f.produce(onPartition(0, rec(uuid.NewString(), "stuck")))
	testenv.Eventually(t, 20*time.Second, func() bool { return tries.Load() > 0 }, "stuck record never tried")

	f.start(consumer.Config{MaxAttempts: 1 << 30, Handler: handler})
	// Records on every partition: the second member must get some of them
	// while the first is stuck on partition 0.
	var want []string
	for p := int32(1); p < 4; p++ {
		v := "p" + string(rune('0'+p))
		want = append(want, v)
		f.produce(onPartition(p, rec(uuid.NewString(), v)))
	}
	testenv.Eventually(t, 30*time.Second, func() bool { return len(f.values()) == len(want) },
		"rebalance blocked: applied %v", f.values())
	close(release)
	testenv.Eventually(t, 30*time.Second, func() bool { return f.committed(group) == 4 }, "stuck record never committed")
	if diff := cmp.Diff(append(want, "stuck"), f.sortedValues()); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
}

// A committed offset beyond the log end (the broker lost records the group
// had consumed) makes the consumer read the partition from its start.
func TestCommittedOffsetBeyondLogEndRereadsFromStart(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, v := range []string{"r0", "r1", "r2"} {
		f.produce(rec(uuid.NewString(), v))
	}
	// Stamped with the topic's own id: only the offset itself is wrong.
	f.commit(group, 0, 100, f.topicID())
	f.start(consumer.Config{Handler: f.recording})
	testenv.Eventually(t, 20*time.Second, func() bool { return len(f.values()) == 3 }, "records below a lost offset never read: %v", f.values())
	if diff := cmp.Diff([]string{"r0", "r1", "r2"}, f.values()); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
}

// A committed offset inside the log but stamped with another topic id (the
// topic was created again since) is not trusted; one stamped with the
// topic's own id is.
func TestCommittedOffsetOfAnotherTopicIncarnationIsNotTrusted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		metadata func(id string) string
		want     []string
	}{
		{"other id", func(string) string { return "00000000000000000000000000000000" }, []string{"r0", "r1", "r2", "r3"}},
		{"no id", func(string) string { return "" }, []string{"r0", "r1", "r2", "r3"}},
		{"own id", func(id string) string { return id }, []string{"r2", "r3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			for _, v := range []string{"r0", "r1", "r2", "r3"} {
				f.produce(rec(uuid.NewString(), v))
			}
			f.commit(group, 0, 2, tc.metadata(f.topicID()))
			f.start(consumer.Config{Handler: f.recording})
			testenv.Eventually(t, 20*time.Second, func() bool { return f.committed(group) == 4 }, "not consumed to the end")
			if diff := cmp.Diff(tc.want, f.values()); diff != "" {
				t.Errorf("applied (-want +got):\n%s", diff)
			}
		})
	}
}

// The consumer stamps its commits with the topic id, so that a restarted
// consumer trusts its own commits.
func TestCommitsCarryTheTopicID(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	stop := f.start(consumer.Config{Handler: f.recording})
	f.produce(rec(uuid.NewString(), "a"))
	testenv.Eventually(t, 20*time.Second, func() bool { return f.committed(group) == 1 }, "not committed")
	stop()
	cl := f.client()
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := offs.Lookup(topic, 0)
	if o.Metadata != f.topicID() {
		t.Errorf("commit metadata = %q, want the topic id %q", o.Metadata, f.topicID())
	}
	f.start(consumer.Config{Handler: f.recording})
	f.produce(rec(uuid.NewString(), "b"))
	testenv.Eventually(t, 20*time.Second, func() bool { return f.committed(group) == 2 }, "not committed")
	if diff := cmp.Diff([]string{"a", "b"}, f.values()); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
}

func (f *fixture) topicID() string {
	f.t.Helper()
	cl := f.client()
	defer cl.Close()
	md, err := kadm.NewClient(cl).Metadata(context.Background(), topic)
	if err != nil {
		f.t.Fatal(err)
	}
	return md.Topics[topic].ID.String()
}

// commit sets group's committed offset of topic/partition with metadata, as
// an earlier member would have left it.
func (f *fixture) commit(group string, partition int32, offset int64, metadata string) {
	f.t.Helper()
	cl := f.client()
	defer cl.Close()
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: topic, Partition: partition, At: offset, LeaderEpoch: -1, Metadata: metadata})
	resp, err := kadm.NewClient(cl).CommitOffsets(context.Background(), group, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		f.t.Fatal(err)
	}
}

// Postgres itself goes down (its processes quit at once) while messages
// wait: they are retried for as long as it is down, far beyond MaxAttempts,
// never parked, and applied once it is back.
func TestDatabaseOutageIsRetriedNotParked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	pgcfg := pgcluster.Config{Dir: filepath.Join(t.TempDir(), "pg"), Port: port, Logger: slog.New(slog.DiscardHandler)}
	pg, err := pgcluster.Start(ctx, pgcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pgcluster.StopDir(context.Background(), pgcfg.Dir) })
	if err := pg.EnsureDatabase(ctx, "journal", "journaluser", "pw"); err != nil {
		t.Fatal(err)
	}
	dbURL := fmt.Sprintf("postgres://journaluser:pw@127.0.0.1:%d/journal?sslmode=disable", port)
	pool := testenv.Pool(t, dbURL)
	if err := migrations.Up(ctx, pool, migrations.Payment()); err != nil {
		t.Fatal(err)
	}
	addr, _ := testenv.Kafka(t)
	f := &fixture{t: t, pool: pool, brokers: []string{addr}}
	f.createApplied()
	var logs testenv.Buffer
	c, err := consumer.New(consumer.Config{
		Group: group, Topics: []string{topic}, Pool: pool, Handler: f.recording,
		Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, MaxAttempts: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.createTopic()
	cl := f.client(c.Opts()...)
	defer cl.Close()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx, cl) }()
	defer func() { cancel(); <-done }()

	f.produce(rec(uuid.NewString(), "before"))
	testenv.Eventually(t, 20*time.Second, func() bool { return len(f.values()) == 1 }, "first message not applied")
	if err := pg.Crash(ctx); err != nil {
		t.Fatal(err)
	}
	f.produce(rec(uuid.NewString(), "during"))
	testenv.Eventually(t, 30*time.Second, func() bool { return logs.Count("message failed, retrying") >= 10 },
		"no retries logged while the database is down")
	if _, err := pgcluster.Start(ctx, pgcfg); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() bool { return len(f.values()) == 2 }, "message not applied after the database came back")
	if parked := f.parked(); len(parked) != 0 {
		t.Errorf("parked during a database outage: %q", parked)
	}
	if diff := cmp.Diff([]string{"before", "during"}, f.values()); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
}

// Records already waiting on a partition are applied several to a
// transaction (each still journaled), in order, each exactly once.
func TestQueuedRecordsShareTransactions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if _, err := f.pool.Exec(context.Background(), `ALTER TABLE applied ADD COLUMN txid bigint NOT NULL DEFAULT txid_current()`); err != nil {
		t.Fatal(err)
	}
	const n = 300
	var want []string
	var recs []*kgo.Record
	for i := range n {
		v := fmt.Sprintf("v%03d", i)
		want = append(want, v)
		recs = append(recs, rec(uuid.NewString(), v))
	}
	f.produce(recs...) // all waiting before the consumer starts
	f.start(consumer.Config{Handler: f.recording})
	testenv.Eventually(t, 30*time.Second, func() bool { return f.committed(group) == n }, "not all committed")
	if diff := cmp.Diff(want, f.values()); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	var txs, journaled int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(DISTINCT txid), (SELECT count(*) FROM consumedmessage) FROM applied`).Scan(&txs, &journaled); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d records in %d transactions", n, txs)
	if txs > n/10 || journaled != n {
		t.Errorf("%d records applied in %d transactions with %d journal entries; want batches and one entry each", n, txs, journaled)
	}
}
