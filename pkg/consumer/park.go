package consumer

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kgo"
)

// execer is the part of a pool or transaction insertParked needs.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// insertParked stores record r of consumer, read from the topic whose id
// is topicID (zero when unknown), in the parkedmessage table with the error
// that stopped it. It keeps the record as it came: key, value, header names
// and values as bytes, in order, so that any record can be parked (a key
// that is not UTF-8, a NUL in a header) and replayed as it was.
//
// A parked message is identified by where it was (consumer, topic,
// partition, offset) and by what it is: a SHA-256 digest of its topic id,
// key, value and headers (the "id" header among them). Parking the same
// record again changes nothing and is a park all the same: the row is
// there. Another record at the same place — offsets reused by a topic
// created again, or by a partition that lost records and was refilled — is
// another message and gets a row of its own. A parked message is not in
// the journal: replaying it applies it once.
func insertParked(ctx context.Context, db execer, consumer string, r *kgo.Record, topicID [16]byte, cause error) error {
	const q = `INSERT INTO parkedmessage (consumer, topic, topic_id, partition, "offset", key, value,
			header_keys, header_values, event_id, digest, error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (consumer, topic, partition, "offset", digest) DO NOTHING`
	keys, values := make([][]byte, len(r.Headers)), make([][]byte, len(r.Headers))
	var eventID *uuid.UUID
	for i, h := range r.Headers {
		keys[i], values[i] = []byte(h.Key), orEmpty(h.Value)
		if id, err := uuid.ParseBytes(h.Value); h.Key == "id" && err == nil {
			eventID = &id
		}
	}
	var tid *uuid.UUID
	if topicID != ([16]byte{}) {
		id := uuid.UUID(topicID)
		tid = &id
	}
	d := digest(r, topicID)
	if _, err := db.Exec(ctx, q, consumer, r.Topic, tid, r.Partition, r.Offset, orEmpty(r.Key), orEmpty(r.Value),
		keys, values, eventID, d[:], cleanText(cause.Error())); err != nil {
		return fmt.Errorf("park %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	return nil
}

// digest identifies a record by what it is: its topic's id, key, value and
// headers, each length-prefixed so that no two records share the input.
func digest(r *kgo.Record, topicID [16]byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write(topicID[:])
	field := func(b []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field(r.Key)
	field(r.Value)
	for _, hd := range r.Headers {
		field([]byte(hd.Key))
		field(hd.Value)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// cleanText makes s storable in a text column: invalid UTF-8 becomes
// U+FFFD and NUL, which PostgreSQL's text refuses, is written \x00. Errors
// may quote what they failed to read.
func cleanText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", `\x00`)
}
