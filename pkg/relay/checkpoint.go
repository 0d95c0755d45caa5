package relay

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The checkpoint: one row per replication slot in the table relay_checkpoint
// of the source database, which the relay creates itself (it is in no
// publication). It records what Kafka acknowledged, so that a broker that
// lost records is noticed at the next start:
//
//	slot_name      text PRIMARY KEY  the connector's slot
//	connector      text              the connector's name, for people
//	snapshot_done  boolean           false: the tables are (re)published at the next start
//	topics         jsonb             {"<topic>": {"id": "<topic ID, base64>", "end": {"<partition>": <end offset>}}}
//	updated_at     timestamptz
//
// It is written when a snapshot or re-publish has been acknowledged, at most
// every CheckpointInterval while streaming (never per record), and when Run
// stops; a WAL position is confirmed only once the acknowledgements of the
// records before it are written.

// checkpoint is the row of a slot.
type checkpoint struct {
	existed      bool
	SnapshotDone bool
	Topics       map[string]*topicCheckpoint
}

type topicCheckpoint struct {
	ID  string          `json:"id"`
	End map[int32]int64 `json:"end"`
}

func (c *checkpoint) clone() checkpoint {
	out := checkpoint{existed: c.existed, SnapshotDone: c.SnapshotDone, Topics: map[string]*topicCheckpoint{}}
	for t, tc := range c.Topics {
		end := make(map[int32]int64, len(tc.End))
		for p, o := range tc.End {
			end[p] = o
		}
		out.Topics[t] = &topicCheckpoint{ID: tc.ID, End: end}
	}
	return out
}

// loadCheckpoint creates the table if needed and reads the slot's row,
// inserting it (snapshot not done) when absent.
func (r *Relay) loadCheckpoint(ctx context.Context, conn *pgx.Conn) (checkpoint, error) {
	const create = `CREATE TABLE IF NOT EXISTS relay_checkpoint (
		slot_name     text        PRIMARY KEY,
		connector     text        NOT NULL,
		snapshot_done boolean     NOT NULL DEFAULT false,
		topics        jsonb       NOT NULL DEFAULT '{}',
		updated_at    timestamptz NOT NULL DEFAULT now())`
	const sel = `SELECT snapshot_done, topics FROM relay_checkpoint WHERE slot_name = $1`
	const ins = `INSERT INTO relay_checkpoint (slot_name, connector) VALUES ($1, $2) ON CONFLICT (slot_name) DO NOTHING`
	for attempt := 0; ; attempt++ {
		_, err := conn.Exec(ctx, create)
		// Two relays of one database may create it at once.
		if code := pgCode(err); (code == "23505" || code == "42P07") && attempt < 3 {
			continue
		}
		if err != nil {
			return checkpoint{}, fmt.Errorf("create table relay_checkpoint: %w", err)
		}
		break
	}
	slot := r.cfg.Connector.SlotName
	c := checkpoint{Topics: map[string]*topicCheckpoint{}}
	var topics []byte
	err := conn.QueryRow(ctx, sel, slot).Scan(&c.SnapshotDone, &topics)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := conn.Exec(ctx, ins, slot, r.cfg.Connector.Name); err != nil {
			return checkpoint{}, fmt.Errorf("insert checkpoint of slot %s: %w", slot, err)
		}
		return c, nil
	case err != nil:
		return checkpoint{}, fmt.Errorf("read checkpoint of slot %s: %w", slot, err)
	}
	c.existed = true
	if err := json.Unmarshal(topics, &c.Topics); err != nil {
		return checkpoint{}, fmt.Errorf("decode checkpoint of slot %s: %w", slot, err)
	}
	for _, t := range c.Topics {
		if t.End == nil {
			t.End = map[int32]int64{}
		}
	}
	return c, nil
}

// writeCheckpoint writes the checkpoint as it is now; it reports what it
// wrote as clean only once the write succeeded. A database that does not
// answer within StandbyTimeout fails it.
func (rn *run) writeCheckpoint(ctx context.Context, conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, rn.r.cfg.StandbyTimeout)
	defer cancel()
	const q = `UPDATE relay_checkpoint SET snapshot_done = $2, topics = $3, updated_at = now() WHERE slot_name = $1`
	rn.mu.Lock()
	c := rn.ckpt.clone()
	rn.dirty, rn.writing = false, true
	rn.mu.Unlock()
	topics, err := json.Marshal(c.Topics)
	if err == nil {
		_, err = conn.Exec(ctx, q, rn.r.cfg.Connector.SlotName, c.SnapshotDone, topics)
	}
	rn.mu.Lock()
	rn.writing = false
	if err != nil {
		rn.dirty = true
	}
	rn.mu.Unlock()
	if err != nil {
		return fmt.Errorf("run relay %s: write checkpoint: %w", rn.r.cfg.Connector.Name, err)
	}
	return nil
}

// brokerLost compares the recorded topics with the broker and returns those
// that lost records: missing, recreated (another topic ID) or with a
// partition ending below the recorded end offset.
func (rn *run) brokerLost(ctx context.Context) ([]string, error) {
	rn.mu.Lock()
	recorded := rn.ckpt.clone().Topics
	rn.mu.Unlock()
	// Heartbeats are not re-published: a lost heartbeat topic loses nothing.
	delete(recorded, rn.r.cfg.Connector.HeartbeatTopic)
	if len(recorded) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(recorded))
	for t := range recorded {
		names = append(names, t)
	}
	slices.Sort(names)
	ids, err := topicIDs(ctx, rn.r.cfg.Kafka, names)
	if err != nil {
		return nil, err
	}
	var lost, present []string
	for _, t := range names {
		if id, ok := ids[t]; !ok || id != recorded[t].ID {
			lost = append(lost, t)
		} else {
			present = append(present, t)
		}
	}
	if len(present) > 0 {
		ends, err := rn.adm.ListEndOffsets(ctx, present...)
		if err != nil {
			return nil, fmt.Errorf("list end offsets of %s: %w", strings.Join(present, ", "), err)
		}
		for _, t := range present {
			for p, want := range recorded[t].End {
				got, ok := ends.Lookup(t, p)
				if !ok || got.Err != nil || got.Offset < want {
					lost = append(lost, t)
					break
				}
			}
		}
	}
	slices.Sort(lost)
	return lost, nil
}

// topicIDs asks the broker (not a metadata cache) for the IDs of the topics
// that exist among names, base64-encoded.
func topicIDs(ctx context.Context, cl *kgo.Client, names []string) (map[string]string, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range names {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("describe topics %s: %w", strings.Join(names, ", "), err)
	}
	ids := map[string]string{}
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		switch err := kerr.ErrorForCode(t.ErrorCode); {
		case err == nil:
			ids[*t.Topic] = base64.StdEncoding.EncodeToString(t.TopicID[:])
		case errors.Is(err, kerr.UnknownTopicOrPartition):
		default:
			return nil, fmt.Errorf("describe topic %s: %w", *t.Topic, err)
		}
	}
	return ids, nil
}
