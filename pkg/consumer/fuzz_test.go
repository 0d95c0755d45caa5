package consumer_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sagabox/sagabox/pkg/consumer"
)

// FuzzDecodeRecord feeds arbitrary records — key, value, an "id" header
// or none, an "eventType" header and one more — to what the consumer does
// with a record before any handler: decode it, read its saga id and its
// JSON. A record is accepted only with an "id" header that is a UUID and
// within the size limit, and then as it is; what fails later fails
// permanently (the message is parked, never retried).
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range badRecords() {
		id, hasID := "", false
		for _, h := range r.Headers {
			if h.Key == "id" {
				id, hasID = string(h.Value), true
			}
		}
		f.Add(r.Key, r.Value, hasID, id, "T", "x", []byte("y"), 64)
	}
	f.Add([]byte("181fbb66-2e7b-4a4b-9a0e-5d0c4f0e2a11"), []byte(`{"status":"APPROVED"}`), true, uuid.NewString(), "CreditUpdated",
		"traceparent", []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), 1000)
	f.Add([]byte("k"), []byte(strings.Repeat("x", 200)), true, uuid.NewString(), "T", "", []byte(nil), 100)
	f.Fuzz(func(t *testing.T, key, value []byte, hasID bool, id, eventType, hKey string, hValue []byte, limit int) {
		if limit <= 0 {
			limit = consumer.DefaultMaxRecordBytes
		}
		r := &kgo.Record{Topic: "t", Key: key, Value: value, Headers: []kgo.RecordHeader{{Key: "eventType", Value: []byte(eventType)}}}
		if hKey != "id" && hKey != "eventType" {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: hKey, Value: hValue})
		}
		if hasID {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: "id", Value: []byte(id)})
		}
		size := len(key) + len(value)
		for _, h := range r.Headers {
			size += len(h.Key) + len(h.Value)
		}
		m, err := consumer.DecodeRecord(r, limit)
		parsed, idErr := uuid.Parse(id)
		switch {
		case !hasID || idErr != nil:
			if err == nil {
				t.Fatalf("accepted a record with id header %v %q", hasID, id)
			}
			return
		case size > limit:
			if err == nil || !strings.Contains(err.Error(), "larger than") {
				t.Fatalf("record of %d bytes over the limit %d: %v", size, limit, err)
			}
		case err != nil:
			t.Fatalf("refused a record of %d bytes with id %q: %v", size, id, err)
		}
		if m.ID != parsed || m.EventType != eventType || m.Key != string(key) || string(m.Value) != string(value) {
			t.Fatalf("decoded %+v from key %q value %q id %q eventType %q", m, key, value, id, eventType)
		}
		if err != nil {
			return
		}
		if _, err := m.SagaID(); err != nil && !errors.Is(err, consumer.ErrPermanent) {
			t.Fatalf("SagaID failed transiently: %v", err)
		}
		var v map[string]any
		if err := m.Decode(&v); err != nil && !errors.Is(err, consumer.ErrPermanent) {
			t.Fatalf("Decode failed transiently: %v", err)
		}
	})
}
