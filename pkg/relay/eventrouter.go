package relay

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Behaviours for an UPDATE on an outbox table (table.op.invalid.behavior).
const (
	InvalidOpWarn  = "warn"  // log a warning and skip the change (default)
	InvalidOpError = "error" // log an error and skip the change
	InvalidOpFatal = "fatal" // stop the relay with an error
)

// Placements of an additional field (table.fields.additional.placement).
const (
	PlaceHeader    = "header"    // a record header
	PlaceEnvelope  = "envelope"  // a field of the value, beside "payload"
	PlacePartition = "partition" // the record's partition (an int4 column)
)

// EventRouter holds the options of Debezium's outbox EventRouter transform
// (EventRouterConfigDefinition), with Debezium's defaults filled in by
// LoadConnector.
type EventRouter struct {
	// RouteByField is the column whose value selects the topic
	// (route.by.field, default "aggregatetype").
	RouteByField string
	// RouteTopicRegex and RouteTopicReplacement are route.topic.regex and
	// route.topic.replacement as written (Java syntax; defaults
	// "(?<routedByValue>.*)" and "outbox.event.${routedByValue}").
	RouteTopicRegex       string
	RouteTopicReplacement string
	// FieldEventID, FieldEventKey and FieldEventPayload name the columns of
	// the "id" header, the Kafka key and the Kafka value
	// (table.field.event.id/key/payload; defaults id, aggregateid, payload).
	FieldEventID      string
	FieldEventKey     string
	FieldEventPayload string
	// FieldEventTimestamp (table.field.event.timestamp) names a timestamp
	// column whose value becomes the record timestamp; empty: the time the
	// change was processed.
	FieldEventTimestamp string
	// FieldSchemaVersion is table.field.event.schema.version: an int4
	// column; it only versions the value schema, which the converters the
	// relay implements do not write.
	FieldSchemaVersion string
	// Placements lists table.fields.additional.placement in configuration
	// order.
	Placements []Placement
	// ErrorOnMissing is table.fields.additional.error.on.missing (default
	// true); false skips a placement whose column the table lacks.
	ErrorOnMissing bool
	// TombstoneOnEmptyPayload is route.tombstone.on.empty.payload: a payload
	// that is NULL or blank after trimming is sent as a tombstone.
	TombstoneOnEmptyPayload bool
	// ExpandJSONPayload is table.expand.json.payload: a payload string that
	// starts with '{' is parsed and emitted as a structure.
	ExpandJSONPayload bool
	// JSONNullAsBytes is table.json.payload.null.behavior=optional_bytes:
	// expanded JSON keeps null fields (default "ignore" drops them).
	JSONNullAsBytes bool
	// OnInvalidOp is table.op.invalid.behavior: InvalidOpWarn (default),
	// InvalidOpError or InvalidOpFatal.
	OnInvalidOp string

	re          *regexp.Regexp // RouteTopicRegex, unanchored
	whole       *regexp.Regexp // RouteTopicRegex, whole value
	replacement string         // RouteTopicReplacement in regexp.Expand syntax
}

// Placement puts the value of Column into a header, an envelope field or the
// record's partition; Alias names the header or field (default Column).
type Placement struct {
	Column string
	Place  string
	Alias  string
}

func parseEventRouter(t *config) EventRouter {
	r := EventRouter{
		RouteByField:            t.str("route.by.field", "aggregatetype"),
		RouteTopicRegex:         t.str("route.topic.regex", "(?<routedByValue>.*)"),
		RouteTopicReplacement:   t.str("route.topic.replacement", "outbox.event.${routedByValue}"),
		FieldEventID:            t.str("table.field.event.id", "id"),
		FieldEventKey:           t.str("table.field.event.key", "aggregateid"),
		FieldEventPayload:       t.str("table.field.event.payload", "payload"),
		FieldEventTimestamp:     t.str("table.field.event.timestamp", ""),
		FieldSchemaVersion:      t.str("table.field.event.schema.version", ""),
		ErrorOnMissing:          t.boolean("table.fields.additional.error.on.missing", true),
		TombstoneOnEmptyPayload: t.boolean("route.tombstone.on.empty.payload", false),
		ExpandJSONPayload:       t.boolean("table.expand.json.payload", false),
		JSONNullAsBytes:         t.enum("table.json.payload.null.behavior", "ignore", "ignore", "optional_bytes") == "optional_bytes",
		OnInvalidOp:             t.enum("table.op.invalid.behavior", InvalidOpWarn, InvalidOpWarn, InvalidOpError, InvalidOpFatal),
	}
	var err error
	if r.re, err = compileJavaRegex(r.RouteTopicRegex, false, false); err != nil {
		t.errorf("route.topic.regex", "%v", err)
	}
	r.whole, _ = compileJavaRegex(r.RouteTopicRegex, false, true)
	r.replacement = javaReplacementToGo(r.RouteTopicReplacement)
	if r.Placements, err = ParsePlacements(t.str("table.fields.additional.placement", "")); err != nil {
		t.errorf("table.fields.additional.placement", "%v", err)
	}
	return r
}

// ParsePlacements parses table.fields.additional.placement: a comma list of
// "column:placement[:alias]" where placement is header, envelope or
// partition (trimmed, case-insensitive). Parts are trimmed; the alias
// defaults to the column name.
func ParsePlacements(s string) ([]Placement, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	// Java's String.split drops trailing empty entries, not inner ones.
	entries := strings.Split(s, ",")
	for len(entries) > 0 && entries[len(entries)-1] == "" {
		entries = entries[:len(entries)-1]
	}
	var ps []Placement
	for _, entry := range entries {
		parts := strings.Split(entry, ":")
		if len(parts) != 2 && len(parts) != 3 {
			return nil, fmt.Errorf("placement %q: want column:placement[:alias]", entry)
		}
		p := Placement{Column: strings.TrimSpace(parts[0]), Place: strings.ToLower(strings.TrimSpace(parts[1]))}
		p.Alias = p.Column
		if len(parts) == 3 {
			p.Alias = strings.TrimSpace(parts[2])
		}
		switch p.Place {
		case PlaceHeader, PlaceEnvelope, PlacePartition:
		default:
			return nil, fmt.Errorf("placement %q: unknown placement %q (want header, envelope or partition)", entry, parts[1])
		}
		if p.Column == "" || p.Alias == "" {
			return nil, fmt.Errorf("placement %q: empty column or alias", entry)
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// topic applies route.topic.regex/replacement as Kafka Connect's
// RegexRouter does: when the regex matches the whole value
// (Matcher.matches), the topic is Matcher.replaceFirst of it; otherwise the
// value itself.
func (r EventRouter) topic(value string) string {
	if r.re == nil || r.whole == nil || !r.whole.MatchString(value) {
		return value
	}
	m := r.re.FindStringSubmatchIndex(value)
	if m == nil {
		return value
	}
	var b []byte
	b = append(b, value[:m[0]]...)
	b = r.re.ExpandString(b, r.replacement, value, m)
	b = append(b, value[m[1]:]...)
	return string(b)
}

// eventRouter is EventRouterDelegate.apply followed by the worker's
// conversion (AbstractWorkerSourceTask.convertTransformedRecord).
func (c Connector) eventRouter(ch Change) ([]Record, error) {
	r := c.EventRouter
	switch ch.Op {
	case OpDelete:
		return nil, nil // deletes (and their tombstones) are ignored
	case OpUpdate:
		err := &UnexpectedUpdateError{Table: ch.Table.QualifiedName(), Level: r.OnInvalidOp}
		err.Fatal = r.OnInvalidOp == InvalidOpFatal
		return nil, err
	}
	ev := newRowValues(ch.Table, ch.After, c.values)
	if _, ok := ev.column(r.FieldEventPayload); !ok {
		return nil, fmt.Errorf("unable to find payload field %s in event", r.FieldEventPayload)
	}
	ts, err := r.timestamp(ev, ch)
	if err != nil {
		return nil, err
	}
	if _, ok := ev.column(r.FieldEventID); !ok {
		return nil, fmt.Errorf("unable to find event-id field %s in event", r.FieldEventID)
	}
	id, _, err := ev.get(r.FieldEventID)
	if err != nil {
		return nil, err
	}
	payload, _, err := ev.get(r.FieldEventPayload)
	if err != nil {
		return nil, err
	}
	if r.FieldSchemaVersion != "" {
		if _, col, err := ev.get(r.FieldSchemaVersion); err != nil {
			return nil, err
		} else if col.Type != oidInt4 {
			return nil, fmt.Errorf("field %s is not of type INT32", r.FieldSchemaVersion)
		}
	}
	headers := c.contextHeaders(ch.RunID)
	idHeader, err := headerString(id)
	if err != nil {
		return nil, fmt.Errorf("header id: %w", err)
	}
	headers = append(headers, Header{Key: "id", Value: idHeader})
	if r.ExpandJSONPayload {
		payload = expandJSONPayload(payload, r.JSONNullAsBytes)
	}
	onlyHeaders := true
	envelope := &structValue{fields: []field{{"payload", payload}}}
	for _, p := range r.Placements {
		if p.Place == PlaceEnvelope {
			onlyHeaders = false
			if _, ok := ev.column(p.Column); !ok { // the value schema needs every envelope column
				return nil, fmt.Errorf("envelope placement %s: no such column", p.Column)
			}
		}
	}
	partition := int32(-1)
	for _, p := range r.Placements {
		if _, ok := ev.column(p.Column); !ok && !r.ErrorOnMissing {
			continue
		}
		v, col, err := ev.get(p.Column)
		if err != nil {
			return nil, fmt.Errorf("additional field %s: %w", p.Column, err)
		}
		switch p.Place {
		case PlaceEnvelope:
			envelope.fields = append(envelope.fields, field{p.Alias, v})
		case PlaceHeader:
			hv, err := headerString(v)
			if err != nil {
				return nil, fmt.Errorf("header %s: %w", p.Alias, err)
			}
			headers = append(headers, Header{Key: p.Alias, Value: hv})
		case PlacePartition:
			if col.Type != oidInt4 {
				return nil, fmt.Errorf("partition field %s is not of type INT32", p.Column)
			}
			partition = -1
			if v != nil {
				partition = v.(int32)
			}
		}
	}
	var (
		value      any
		schemaless bool
	)
	switch {
	case isBlankPayload(payload) && r.TombstoneOnEmptyPayload:
		schemaless = true
	case onlyHeaders:
		value = payload
	default:
		value = envelope
	}
	routeBy, col, err := ev.get(r.RouteByField)
	if err != nil {
		return nil, fmt.Errorf("route field: %w", err)
	}
	topicValue, isString := routeBy.(string)
	if !isString && routeBy != nil {
		return nil, fmt.Errorf("field %s (type oid %d) is not of type STRING", r.RouteByField, col.Type)
	}
	if routeBy == nil {
		return nil, fmt.Errorf("route field %s is NULL", r.RouteByField)
	}
	rec := Record{Topic: r.topic(topicValue), Partition: partition, Headers: headers, Timestamp: ts}
	if rec.Topic == "" {
		return nil, fmt.Errorf("route field %s: value %q routes to an empty topic", r.RouteByField, topicValue)
	}
	key, _, err := ev.get(r.FieldEventKey)
	if err != nil {
		return nil, fmt.Errorf("key field: %w", err)
	}
	if rec.Key, err = c.Key.encode(key, false); err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	if rec.Value, err = c.Value.encode(value, schemaless); err != nil {
		return nil, fmt.Errorf("value: %w", err)
	}
	return []Record{rec}, nil
}

// isBlankPayload is EventRouter's delete-event test: a null payload, or one
// whose toString is empty after Java's trim (characters up to U+0020).
func isBlankPayload(p any) bool {
	if p == nil {
		return true
	}
	s, ok := p.(string)
	return ok && strings.TrimLeft(strings.TrimRight(s, javaTrimSet), javaTrimSet) == ""
}

var javaTrimSet = func() string {
	var b strings.Builder
	for c := byte(0); c <= ' '; c++ {
		b.WriteByte(c)
	}
	return b.String()
}()

// timestamp is EventRouterDelegate.getEventTimestampMs followed by
// ConnectUtils.checkAndConvertTimestamp: the processing time by default; the
// column's value (a timestamp column: Timestamp or MicroTimestamp) when
// configured and not NULL.
func (r EventRouter) timestamp(ev *rowValues, ch Change) (time.Time, error) {
	ms := ch.At.UnixMilli()
	if r.FieldEventTimestamp != "" {
		col, ok := ev.column(r.FieldEventTimestamp)
		if !ok {
			return time.Time{}, fmt.Errorf("unable to find timestamp field %s in event", r.FieldEventTimestamp)
		}
		v, _, err := ev.get(r.FieldEventTimestamp)
		if err != nil {
			return time.Time{}, err
		}
		if col.Type != oidTimestamp {
			return time.Time{}, fmt.Errorf("field %s (type oid %d) is not a timestamp: Debezium reads it with getInt64 and a Timestamp or MicroTimestamp schema", r.FieldEventTimestamp, col.Type)
		}
		if v != nil {
			n := v.(int64)
			if timePrecision(col) > 3 {
				n /= 1000 // MicroTimestamp: Java's long division truncates too
			}
			ms = n
		}
	}
	switch {
	case ms == -1:
		return time.Time{}, nil // RecordBatch.NO_TIMESTAMP: the producer stamps it
	case ms < 0:
		return time.Time{}, fmt.Errorf("invalid record timestamp %d", ms)
	}
	return time.UnixMilli(ms), nil
}
