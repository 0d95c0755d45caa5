package consumer_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/pkg/consumer"
)

// parkedRow is what a test reads back of a parked message.
type parkedRow struct {
	TopicID      *uuid.UUID
	Offset       int64
	EventID      *uuid.UUID
	Key          []byte
	Value        []byte
	HeaderKeys   [][]byte
	HeaderValues [][]byte
	Error        string
}

func (f *fixture) parkedRows() []parkedRow {
	f.t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT topic_id, "offset", event_id, key, value, header_keys, header_values, error
		FROM parkedmessage ORDER BY id`)
	if err != nil {
		f.t.Fatal(err)
	}
	ps, err := pgx.CollectRows(rows, pgx.RowToStructByPos[parkedRow])
	if err != nil {
		f.t.Fatal(err)
	}
	return ps
}

// topicUUID returns the topic's id as a UUID string.
func (f *fixture) topicUUID() string {
	f.t.Helper()
	cl := f.client()
	defer cl.Close()
	md, err := kadm.NewClient(cl).Metadata(context.Background(), topic)
	if err != nil {
		f.t.Fatal(err)
	}
	return uuid.UUID(md.Topics[topic].ID).String()
}

// poisonous parks every message whose value starts with "poison" and
// applies the others.
func (f *fixture) poisonous(ctx context.Context, tx pgx.Tx, m consumer.Message) error {
	if bytes.HasPrefix(m.Value, []byte("poison")) {
		return consumer.Permanent(errors.New("cannot apply " + string(m.Value)))
	}
	return f.recording(ctx, tx, m)
}

// Offsets are reused when a topic is created again (what a broker that lost
// its topic list does; the relay then re-publishes). A new poison message at
// the offset of one parked before is another message: it is parked too,
// not taken for the old one and committed unparked.
func TestPoisonAtAReusedOffsetIsParkedAgain(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	stop := f.start(consumer.Config{Handler: f.poisonous})
	first := uuid.New()
	f.produce(rec(first.String(), "poison-1"))
	testenv.Eventually(t, 20*time.Second, func() bool { return f.committed(group) == 1 }, "first poison not committed")
	oldID := f.topicUUID()
	stop()

	cl := f.client()
	adm := kadm.NewClient(cl)
	if _, err := adm.DeleteTopic(context.Background(), topic); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		_, err := adm.CreateTopic(context.Background(), 4, -1, nil, topic)
		return err == nil
	}, "topic not created again")
	cl.Close()
	second := uuid.New()
	f.produce(rec(second.String(), "poison-2"), rec(uuid.NewString(), "good"))
	f.start(consumer.Config{Handler: f.poisonous})
	testenv.Eventually(t, 20*time.Second, func() bool { return len(f.values()) == 1 }, "the good message after the poison not applied")

	got := f.parkedRows()
	if len(got) != 2 {
		t.Fatalf("parked %d rows, want 2 (one per poison message): %+v", len(got), got)
	}
	for i, want := range []struct {
		event   uuid.UUID
		topicID string
	}{{first, oldID}, {second, f.topicUUID()}} {
		p := got[i]
		if p.Offset != 0 || p.EventID == nil || *p.EventID != want.event || p.TopicID == nil || p.TopicID.String() != want.topicID {
			t.Errorf("parked[%d] = offset %d, event %v, topic %v; want offset 0, event %s, topic %s",
				i, p.Offset, p.EventID, p.TopicID, want.event, want.topicID)
		}
	}
}

// A record whose key is not UTF-8 and whose headers hold a NUL — which text
// and jsonb columns refuse — is parked all the same, with its bytes, and
// its partition goes on.
func TestRecordTextRefusesIsParkedWithItsBytes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(consumer.Config{Handler: f.poisonous})
	id := uuid.NewString()
	key := []byte{0xff, 0xfe, 0x00, 'k'}
	bad := &kgo.Record{Key: key, Value: []byte("poison \x00 value"), Headers: []kgo.RecordHeader{
		{Key: "id", Value: []byte(id)}, {Key: "eventType", Value: []byte("T\x00")}, {Key: "bin\xff", Value: []byte{0, 1, 2}},
		{Key: "eventType", Value: []byte("again")},
	}}
	noID := &kgo.Record{Key: []byte{0xc3}, Value: []byte("x"), Headers: []kgo.RecordHeader{{Key: "x", Value: []byte("\x00")}}}
	f.produce(bad, noID, rec(uuid.NewString(), "good"))
	testenv.Eventually(t, 20*time.Second, func() bool { return len(f.values()) == 1 && f.committed(group) == 3 },
		"the good message after the unparkable ones not applied")
	got := f.parkedRows()
	if len(got) != 2 {
		t.Fatalf("parked %d rows, want 2: %+v", len(got), got)
	}
	want := []parkedRow{
		{Offset: 0, Key: key, Value: bad.Value,
			HeaderKeys:   [][]byte{[]byte("id"), []byte("eventType"), []byte("bin\xff"), []byte("eventType")},
			HeaderValues: [][]byte{[]byte(id), []byte("T\x00"), {0, 1, 2}, []byte("again")}},
		{Offset: 1, Key: noID.Key, Value: noID.Value, HeaderKeys: [][]byte{[]byte("x")}, HeaderValues: [][]byte{{0}}},
	}
	for i := range got {
		got[i].TopicID, got[i].EventID, got[i].Error = nil, nil, ""
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parked rows (-want +got):\n%s", diff)
	}
}

// What identifies a parked message: the same record parked twice is one row
// (and both parks succeed: it is parked); another record at the same place
// and of the same topic incarnation — a partition that lost records and was
// refilled — is a row of its own.
func TestParkedMessageIsIdentifiedByWhatItIs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	topicID := [16]byte(uuid.New())
	at := func(value string) *kgo.Record {
		r := rec(uuid.NewString(), value)
		r.Topic, r.Partition, r.Offset = topic, 2, 7
		return r
	}
	a, b := at("a"), at("b")
	for _, r := range []*kgo.Record{a, a, b, b} {
		if err := consumer.InsertParked(ctx, f.pool, group, r, topicID, errors.New("boom \x00 \xff")); err != nil {
			t.Fatalf("park %s: %v", r.Value, err)
		}
	}
	got := f.parkedRows()
	if len(got) != 2 || string(got[0].Value) != "a" || string(got[1].Value) != "b" {
		t.Fatalf("parked rows %+v, want a and b once each", got)
	}
	if got[0].Error != `boom \x00 `+"\uFFFD" {
		t.Errorf("error stored as %q", got[0].Error)
	}
}

// A message ahead of the state it answers (the handler says Early) is tried
// again shortly until it fits: applied once, never parked, reported Early
// once.
func TestEarlyMessageIsWaitedFor(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var (
		visible        atomic.Bool
		attempts       atomic.Int32
		early, applied atomic.Int32
	)
	f.start(consumer.Config{
		Handler: func(ctx context.Context, tx pgx.Tx, m consumer.Message) error {
			if string(m.Value) == "reply" && !visible.Load() {
				attempts.Add(1)
				return consumer.Early(errors.New("saga not found"))
			}
			return f.recording(ctx, tx, m)
		},
		Observer: func(_ string, o consumer.Outcome) {
			switch o {
			case consumer.RecordEarly:
				early.Add(1)
			case consumer.RecordApplied:
				applied.Add(1)
			}
		},
	})
	f.produce(rec(uuid.NewString(), "reply"), rec(uuid.NewString(), "next"))
	testenv.Eventually(t, 20*time.Second, func() bool { return attempts.Load() >= 3 }, "early message not retried")
	if n := len(f.values()); n != 0 {
		t.Fatalf("%d messages applied while the first one waits, want 0 (its partition waits)", n)
	}
	visible.Store(true)
	testenv.Eventually(t, 20*time.Second, func() bool { return f.committed(group) == 2 }, "not committed once visible")
	if diff := cmp.Diff([]string{"reply", "next"}, f.values()); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	if p := f.parked(); len(p) != 0 {
		t.Errorf("parked %q, want nothing", p)
	}
	if early.Load() != 1 || applied.Load() != 2 {
		t.Errorf("observed early %d, applied %d; want 1 and 2", early.Load(), applied.Load())
	}
}

// An early message whose state never shows up is parked after EarlyWait,
// and its partition goes on.
func TestEarlyMessageParkedAfterEarlyWait(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(consumer.Config{EarlyWait: 300 * time.Millisecond,
		Handler: func(ctx context.Context, tx pgx.Tx, m consumer.Message) error {
			if string(m.Value) == "orphan" {
				return consumer.Early(errors.New("saga not found"))
			}
			return f.recording(ctx, tx, m)
		}})
	f.produce(rec(uuid.NewString(), "orphan"), rec(uuid.NewString(), "next"))
	testenv.Eventually(t, 20*time.Second, func() bool { return f.committed(group) == 2 }, "not committed")
	parked := f.parked()
	if len(parked) != 1 || !bytes.Contains([]byte(parked[0]), []byte("still ahead of the state it answers after")) {
		t.Errorf("parked %q, want the orphan, still ahead after EarlyWait", parked)
	}
	if diff := cmp.Diff([]string{"next"}, f.values()); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
}
