package consumer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/pkg/consumer"
)

// A record over MaxRecordBytes is parked with its size, its headers kept,
// and never handed to the handler; so is one larger than a whole fetch of a
// partition (FetchMaxPartitionBytes: the broker still sends it, alone). The
// partition goes on behind them.
func TestOversizedRecordsAreParked(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(consumer.Config{Handler: f.recording})
	big := rec(uuid.NewString(), strings.Repeat("x", consumer.DefaultMaxRecordBytes))
	huge := rec(uuid.NewString(), strings.Repeat("y", consumer.FetchMaxPartitionBytes+1))
	cl := f.client(kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(4<<20))
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), big, huge, rec(uuid.NewString(), "after")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() bool { return len(f.values()) == 1 && f.committed(group) == 3 },
		"the record after the oversized ones was not applied")
	if diff := cmp.Diff([]string{"after"}, f.values()); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	parked := f.parked()
	if len(parked) != 2 {
		t.Fatalf("parked %q, want the two oversized records", parked)
	}
	for i, r := range []*kgo.Record{big, huge} {
		// Key "k", headers id (2+36 bytes) and eventType (9+1): 49 bytes besides the value.
		want := fmt.Sprintf("record of %d bytes is larger than the 65536 bytes a consumer accepts", len(r.Value)+49)
		if !strings.Contains(parked[i], want) {
			t.Errorf("parked[%d] = %q, want %q", i, parked[i], want)
		}
	}
	var ids, withValue int
	err := f.pool.QueryRow(context.Background(), `SELECT count(event_id), count(*) FILTER (WHERE length(value) >= 65536)
		FROM parkedmessage`).Scan(&ids, &withValue)
	if err != nil || ids != 2 || withValue != 2 {
		t.Errorf("parked rows with an id header %d, with their value %d (%v): want 2 and 2, replayable", ids, withValue, err)
	}
}

// MaxRecordBytes sets the bound.
func TestMaxRecordBytes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start(consumer.Config{Handler: f.recording, MaxRecordBytes: 100})
	f.produce(rec(uuid.NewString(), strings.Repeat("a", 51)), rec(uuid.NewString(), strings.Repeat("b", 52)))
	testenv.Eventually(t, 20*time.Second, func() bool { return f.committed(group) == 2 }, "offsets not committed")
	if diff := cmp.Diff([]string{strings.Repeat("a", 51)}, f.values()); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	if p := f.parked(); len(p) != 1 || !strings.Contains(p[0], "record of 101 bytes is larger than the 100 bytes") {
		t.Errorf("parked %q", p)
	}
}
