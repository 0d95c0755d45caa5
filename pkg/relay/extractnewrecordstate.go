package relay

import (
	"fmt"
	"reflect"
)

// Delete handling modes of ExtractNewRecordState
// (delete.tombstone.handling.mode).
const (
	// DeleteTombstone turns a delete into a record with the old key and a
	// null value (Debezium's default) and drops the connector's tombstone.
	DeleteTombstone = "tombstone"
	// DeleteDrop drops deletes and tombstones.
	DeleteDrop = "drop"
	// DeleteRewrite emits the old row with "__deleted":"true" (and
	// "__deleted":"false" on every other record); tombstones dropped.
	DeleteRewrite = "rewrite"
	// DeleteRewriteWithTombstone is DeleteRewrite keeping the connector's
	// tombstone.
	DeleteRewriteWithTombstone = "rewrite-with-tombstone"
	// DeleteToTombstone turns a delete into a real tombstone (no value
	// schema either) and drops the connector's tombstone.
	DeleteToTombstone = "delete-to-tombstone"
)

// ExtractNewRecordState holds the options of Debezium's
// ExtractNewRecordState transform the relay implements.
type ExtractNewRecordState struct {
	// DeleteHandling is delete.tombstone.handling.mode (default
	// DeleteTombstone).
	DeleteHandling string
}

func parseExtractNewRecordState(t *config) ExtractNewRecordState {
	u := ExtractNewRecordState{
		DeleteHandling: t.enum("delete.tombstone.handling.mode", DeleteTombstone,
			DeleteTombstone, DeleteDrop, DeleteRewrite, DeleteRewriteWithTombstone, DeleteToTombstone),
	}
	for _, k := range []string{"add.fields", "add.headers", "route.by.field", "drop.fields.header.name"} {
		if t.str(k, "") != "" {
			t.errorf(k, "not supported by the relay")
		}
	}
	t.boolean("replace.null.with.default", true)
	t.boolean("drop.fields.from.key", false)
	t.boolean("drop.fields.keep.schema.compatible", true)
	return u
}

// extractNewRecordState is ExtractNewRecordState.doApply on the records the
// connector emits for one change (EventDispatcher: the change, then, for a
// delete with tombstones.on.delete, a tombstone; an update of the primary
// key is a delete of the old key and a create of the new one), followed by
// the worker's conversion. Records keep the connector's timestamp: none.
func (c Connector) extractNewRecordState(ch Change) ([]Record, error) {
	mode := c.Unwrap.DeleteHandling
	var out []Record
	emit := func(key *structValue, value any, schemaless bool) error {
		rec := Record{
			Topic:     c.TopicPrefix + "." + ch.Table.Schema + "." + ch.Table.Name,
			Partition: -1,
			Headers:   c.contextHeaders(ch.RunID),
		}
		var err error
		var k any
		if key != nil {
			k = key
		}
		if rec.Key, err = c.Key.encode(k, key == nil); err != nil {
			return fmt.Errorf("key: %w", err)
		}
		if rec.Value, err = c.Value.encode(value, schemaless); err != nil {
			return fmt.Errorf("value: %w", err)
		}
		out = append(out, rec)
		return nil
	}
	deleted := func(before Row) error {
		old := newRowValues(ch.Table, before, c.values)
		key, err := old.key()
		if err != nil {
			return err
		}
		switch mode {
		case DeleteTombstone: // the "after" field: null, with its schema
			err = emit(key, nil, false)
		case DeleteToTombstone:
			err = emit(key, nil, true)
		case DeleteRewrite, DeleteRewriteWithTombstone:
			var row *structValue
			if row, err = beforeStruct(ch.Table, before, c.values); err == nil {
				row.fields = append(row.fields, field{"__deleted", "true"})
				err = emit(key, row, false)
			}
		}
		if err == nil && c.TombstonesOnDelete && mode == DeleteRewriteWithTombstone {
			err = emit(key, nil, true)
		}
		return err
	}
	created := func(after Row) error {
		cur := newRowValues(ch.Table, after, c.values)
		key, err := cur.key()
		if err != nil {
			return err
		}
		row, err := cur.all()
		if err != nil {
			return err
		}
		if mode == DeleteRewrite || mode == DeleteRewriteWithTombstone {
			row.fields = append(row.fields, field{"__deleted", "false"})
		}
		return emit(key, row, false)
	}
	var err error
	switch ch.Op {
	case OpRead, OpCreate:
		err = created(ch.After)
	case OpUpdate:
		if ch.Before != nil && keyChanged(ch.Table, ch.Before, ch.After) {
			if err = deleted(ch.Before); err == nil {
				err = created(ch.After)
			}
		} else {
			err = created(ch.After)
		}
	case OpDelete:
		err = deleted(ch.Before)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// beforeStruct is the "before" struct of a delete: every column, NULL for
// those the WAL did not carry (replica identity DEFAULT carries the key).
func beforeStruct(t Table, before Row, o valueOptions) (*structValue, error) {
	full := Row{}
	for _, col := range t.Columns {
		full[col.Name] = before[col.Name]
	}
	return newRowValues(t, full, o).all()
}

func keyChanged(t Table, before, after Row) bool {
	for _, k := range t.Key {
		b, a := before[k], after[k]
		if !reflect.DeepEqual(b, a) {
			return true
		}
	}
	return false
}
