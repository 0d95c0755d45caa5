package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
)

// When a WAL position is confirmed: a transaction is safe once committed
// and every one of its records acknowledged; a safe position is confirmable
// once those acknowledgements are in a written checkpoint.

// confirmable is the position that may be confirmed: safe when every
// acknowledgement is in a written checkpoint, else safe as of the last
// checkpoint. Called with mu held.
func (s *stream) confirmable() pglogrepl.LSN {
	if s.dirty || s.writing {
		return s.ckptSafe
	}
	return s.safe
}

// checkpoint writes the checkpoint and, once written, lets the position
// reached before it be confirmed.
func (s *stream) checkpoint(ctx context.Context) error {
	s.mu.Lock()
	safe := s.safe
	s.mu.Unlock()
	s.lastCkpt = time.Now()
	if err := s.writeCheckpoint(ctx, s.conn); err != nil {
		return err
	}
	s.mu.Lock()
	s.ckptSafe = max(s.ckptSafe, safe)
	s.mu.Unlock()
	return nil
}

// advance pops the leading transactions that are committed and fully
// acknowledged, moving the safe position to their end. Called with mu held.
func (s *stream) advance() {
	for len(s.queue) > 0 && s.queue[0].committed && s.queue[0].pending == 0 {
		if s.queue[0].end > s.safe {
			s.safe = s.queue[0].end
		}
		s.queue[0] = nil
		s.queue = s.queue[1:]
	}
}

// sendStatus reports the confirmable position as written, flushed and
// applied.
func (s *stream) sendStatus(ctx context.Context) error {
	s.mu.Lock()
	pos := s.confirmable()
	s.mu.Unlock()
	pos = max(pos, s.sent)
	ctx, cancel := context.WithTimeout(ctx, s.r.cfg.StandbyTimeout)
	defer cancel()
	err := pglogrepl.SendStandbyStatusUpdate(ctx, s.repl, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pos, WALFlushPosition: pos, WALApplyPosition: pos,
	})
	if err != nil {
		return fmt.Errorf("run relay %s: send standby status: %w", s.r.cfg.Connector.Name, err)
	}
	if pos > s.sent {
		s.r.log.DebugContext(ctx, "wal position confirmed", "lsn", pos.String())
	}
	s.sent = pos
	s.lastSend = time.Now()
	s.r.storeConfirmed(pos)
	return nil
}

// finish ends the stream, whether it stops or fails: it waits (bounded) for
// the records in flight, so that the records before a failing change are
// delivered; writes the checkpoint (marking the tables for re-publishing
// when the broker lost records); confirms what is safe; and closes the
// replication connection.
func (s *stream) finish(ctx context.Context, cause error) error {
	c := s.r.cfg.Connector
	bg := context.WithoutCancel(ctx)
	if n := s.drain(s.r.cfg.DrainTimeout); n > 0 {
		s.r.log.WarnContext(bg, "relay stopped with records in flight", "records", n)
	}
	s.mu.Lock()
	failed := s.failed
	if s.lost {
		s.ckpt.SnapshotDone = false
		s.dirty = true
	}
	dirty := s.dirty
	s.mu.Unlock()
	if cause == nil && failed != nil {
		// Stopping anyway: the failed records stay unconfirmed and are
		// sent again by the next Run.
		s.r.log.WarnContext(bg, "produce failed while stopping", "err", failed)
	}
	if dirty {
		if err := s.checkpoint(bg); err != nil && cause == nil {
			cause = err
		}
	}
	if s.live {
		if err := s.sendStatus(bg); err != nil && cause == nil {
			cause = err
		}
	}
	cctx, cancel := context.WithTimeout(bg, 5*time.Second)
	defer cancel()
	_ = s.repl.Close(cctx)
	if cause != nil {
		return cause // logged by the caller, who restarts the relay
	}
	s.r.log.InfoContext(bg, "relay stopped", "slot", c.SlotName, "lsn", s.r.Confirmed().String())
	return nil
}
