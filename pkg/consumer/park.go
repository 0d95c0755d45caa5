package consumer

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// execer is the part of a pool or transaction insertParked needs.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// insertParked stores message m of consumer in the parkedmessage table with
// the error that stopped it. Parking the same record (consumer, topic,
// partition, offset) again changes nothing. A parked message is not in the
// journal: replaying it applies it once.
func insertParked(ctx context.Context, db execer, consumer string, m Message, cause error) error {
	const q = `INSERT INTO parkedmessage (consumer, topic, partition, "offset", key, value, headers, error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (consumer, topic, partition, "offset") DO NOTHING`
	headers, err := json.Marshal(m.Headers)
	if err != nil {
		return fmt.Errorf("park %s/%d@%d: encode headers: %w", m.Topic, m.Partition, m.Offset, err)
	}
	value := m.Value
	if value == nil {
		value = []byte{}
	}
	if _, err := db.Exec(ctx, q, consumer, m.Topic, m.Partition, m.Offset, m.Key, value, headers, cause.Error()); err != nil {
		return fmt.Errorf("park %s/%d@%d: %w", m.Topic, m.Partition, m.Offset, err)
	}
	return nil
}
