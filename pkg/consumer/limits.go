package consumer

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Limits on what a consumer reads from Kafka. Every message of this system
// is a few hundred bytes (the order API refuses bodies over 64 KiB, the
// relay publishes outbox rows as they are), so the limits are far above
// real traffic and only bound memory and the work one record can cause.
const (
	// DefaultMaxRecordBytes is Config.MaxRecordBytes' default: the largest
	// record (key, value and headers together) a consumer hands to its
	// handler. A larger one is parked unread, with its size in the error.
	DefaultMaxRecordBytes = 64 << 10
	// FetchMaxPartitionBytes and FetchMaxBytes (set by Consumer.Opts) are what one fetch asks the
	// broker for, per partition and in all (franz-go's defaults are 1 MiB
	// and 50 MiB). They are soft: a record batch larger than either still
	// comes, alone, so that an oversized record is parked instead of
	// stalling its partition.
	FetchMaxPartitionBytes = 1 << 20
	FetchMaxBytes          = 8 << 20
	// BrokerMaxReadBytes is the hard bound on one response the client
	// reads from a broker (franz-go's default is 100 MiB); it must exceed
	// FetchMaxBytes and the broker's largest record batch (Kafka's
	// message.max.bytes, 1 MiB by default).
	BrokerMaxReadBytes = 16 << 20
)

// recordSize is what a record weighs against MaxRecordBytes.
func recordSize(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// checkSize refuses a record larger than limit.
func checkSize(r *kgo.Record, limit int) error {
	if n := recordSize(r); n > limit {
		return fmt.Errorf("record of %d bytes is larger than the %d bytes a consumer accepts", n, limit)
	}
	return nil
}
