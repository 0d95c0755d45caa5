package relay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Row is one row as logical replication (pgoutput) delivers it: column name
// to the value's text representation; nil is SQL NULL.
type Row map[string]*string

// Table describes a captured table.
type Table struct {
	Schema string
	Name   string
	// Columns in table order. ExtractNewRecordState needs them for the
	// value's field order, the JSON types and the key; EventRouter ignores
	// them.
	Columns []Column
}

// Column is one column of a Table.
type Column struct {
	Name string
	// Type is the column's type OID (pg_type.oid), e.g. 23 for int4.
	Type uint32
	// Key marks a primary key column: the Kafka key of
	// ExtractNewRecordState.
	Key bool
}

// QualifiedName returns "schema.table", the form of table.include.list.
func (t Table) QualifiedName() string { return t.Schema + "." + t.Name }

// Record is one Kafka record produced for a row.
type Record struct {
	Topic   string
	Key     []byte
	Value   []byte // nil is a tombstone
	Headers []Header
}

// Header is one Kafka record header. A nil Value is a null header value.
type Header struct {
	Key   string
	Value []byte
}

// UnavailableValue replaces an unchanged TOASTed column that the WAL does
// not carry, as Debezium does (unavailable.value.placeholder).
const UnavailableValue = "__debezium_unavailable_value"

// Route turns a captured row into the record Debezium would publish for it
// with this connector's transform. It is pure: no I/O, same input, same
// record.
//
// EventRouter (key and value through StringConverter): the topic is
// RouteTopicReplacement applied to the first match of RouteTopicRegex in the
// RouteByField column (the value itself when the regex does not match); the
// key is the FieldEventKey column; the value is the FieldEventPayload
// column's text, nil (a tombstone) when it is NULL (or empty, with
// TombstoneOnEmptyPayload); the headers are "id" (the FieldEventID column)
// followed by the additional placements in configuration order. As in
// Debezium, a header whose column is NULL is still present, with a nil
// (null) value.
//
// ExtractNewRecordState (JsonConverter, schemas disabled): the topic is
// "<topic.prefix>.<schema>.<table>", the key a JSON object of the primary
// key columns (nil when the table has none), the value a JSON object of the
// row in column order. int2/int4/int8/float4/float8/oid become JSON numbers,
// bool a JSON boolean, timestamptz an ISO-8601 UTC string, NULL null, and
// every other type (text, uuid, json, jsonb, numeric, ...) its text as a
// JSON string, as Debezium emits json columns.
func (c Connector) Route(t Table, row Row) (Record, error) {
	if !slices.Contains(c.Tables, t.QualifiedName()) {
		return Record{}, fmt.Errorf("route %s row: table not in table.include.list of connector %s", t.QualifiedName(), c.Name)
	}
	switch c.Transform {
	case TransformEventRouter:
		rec, err := c.EventRouter.route(row)
		if err != nil {
			return Record{}, fmt.Errorf("route %s row: %w", t.QualifiedName(), err)
		}
		return rec, nil
	case TransformExtractNewRecordState:
		return c.extractNewRecordState(t, row)
	default:
		return Record{}, fmt.Errorf("route %s row: unsupported transform %q", t.QualifiedName(), c.Transform)
	}
}

func (r EventRouter) route(row Row) (Record, error) {
	routeBy, ok := row[r.RouteByField]
	if !ok {
		return Record{}, fmt.Errorf("route field %s: no such column", r.RouteByField)
	}
	if routeBy == nil {
		return Record{}, fmt.Errorf("route field %s: is NULL", r.RouteByField)
	}
	topic, err := r.topic(*routeBy)
	if err != nil {
		return Record{}, err
	}
	if topic == "" {
		return Record{}, fmt.Errorf("route field %s: value %q routes to an empty topic", r.RouteByField, *routeBy)
	}
	rec := Record{Topic: topic}
	if v, err := column(row, r.FieldEventKey, "table.field.event.key"); err != nil {
		return Record{}, err
	} else if v != nil {
		rec.Key = []byte(*v)
	}
	payload, err := column(row, r.FieldEventPayload, "table.field.event.payload")
	if err != nil {
		return Record{}, err
	}
	if payload != nil && (*payload != "" || !r.TombstoneOnEmptyPayload) {
		rec.Value = []byte(*payload)
	}
	id, err := column(row, r.FieldEventID, "table.field.event.id")
	if err != nil {
		return Record{}, err
	}
	rec.Headers = make([]Header, 0, 1+len(r.Headers))
	rec.Headers = append(rec.Headers, Header{Key: "id", Value: textBytes(id)})
	for _, p := range r.Headers {
		v, err := column(row, p.Column, "table.fields.additional.placement")
		if err != nil {
			return Record{}, err
		}
		rec.Headers = append(rec.Headers, Header{Key: p.Header, Value: textBytes(v)})
	}
	return rec, nil
}

// topic applies route.topic.regex/replacement like Java's
// Matcher.replaceFirst.
func (r EventRouter) topic(value string) (string, error) {
	re := r.re
	if re == nil || re.String() != r.RouteTopicRegex {
		var err error
		if re, err = regexp.Compile(r.RouteTopicRegex); err != nil {
			return "", fmt.Errorf("route.topic.regex: %w", err)
		}
	}
	m := re.FindStringSubmatchIndex(value)
	if m == nil {
		return value, nil
	}
	var b []byte
	b = append(b, value[:m[0]]...)
	b = re.ExpandString(b, r.RouteTopicReplacement, value, m)
	b = append(b, value[m[1]:]...)
	return string(b), nil
}

func column(row Row, name, setting string) (*string, error) {
	v, ok := row[name]
	if !ok {
		return nil, fmt.Errorf("%s %s: no such column", setting, name)
	}
	return v, nil
}

func textBytes(v *string) []byte {
	if v == nil {
		return nil
	}
	return []byte(*v)
}

// Type OIDs ExtractNewRecordState converts to JSON non-strings.
const (
	oidBool        = 16
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidOID         = 26
	oidFloat4      = 700
	oidFloat8      = 701
	oidTimestampTZ = 1184
)

func (c Connector) extractNewRecordState(t Table, row Row) (Record, error) {
	cols := t.Columns
	if len(cols) == 0 {
		// Without a description every column is text, in name order.
		for _, name := range slices.Sorted(maps.Keys(row)) {
			cols = append(cols, Column{Name: name})
		}
	}
	rec := Record{Topic: c.TopicPrefix + "." + t.Schema + "." + t.Name}
	var key, value bytes.Buffer
	key.WriteByte('{')
	value.WriteByte('{')
	for _, col := range cols {
		v, ok := row[col.Name]
		if !ok {
			return Record{}, fmt.Errorf("route %s row: column %s missing", t.QualifiedName(), col.Name)
		}
		writeField(&value, col, v)
		if col.Key {
			writeField(&key, col, v)
		}
	}
	key.WriteByte('}')
	value.WriteByte('}')
	if key.Len() > 2 {
		rec.Key = key.Bytes()
	}
	rec.Value = value.Bytes()
	return rec, nil
}

func writeField(b *bytes.Buffer, col Column, v *string) {
	if b.Len() > 1 {
		b.WriteByte(',')
	}
	writeJSONString(b, col.Name)
	b.WriteByte(':')
	if v == nil {
		b.WriteString("null")
		return
	}
	s := *v
	switch col.Type {
	case oidInt2, oidInt4, oidInt8, oidOID:
		if _, err := strconv.ParseInt(s, 10, 64); err == nil {
			b.WriteString(s)
			return
		}
	case oidFloat4, oidFloat8:
		// NaN and ±Infinity have no JSON number form: they stay strings.
		if isJSONNumber(s) {
			b.WriteString(s)
			return
		}
	case oidBool:
		switch s {
		case "t", "true":
			b.WriteString("true")
			return
		case "f", "false":
			b.WriteString("false")
			return
		}
	case oidTimestampTZ:
		if ts, ok := parseTimestampTZ(s); ok {
			s = ts.UTC().Format(time.RFC3339Nano)
		}
	}
	writeJSONString(b, s)
}

func isJSONNumber(s string) bool {
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return false
	}
	var n json.Number
	return json.Unmarshal([]byte(s), &n) == nil
}

// writeJSONString writes s as a JSON string without HTML escaping, as
// Jackson (Kafka Connect's JsonConverter) does.
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // a string always encodes
	b.Truncate(b.Len() - 1) // Encode appends a newline
}

// parseTimestampTZ parses timestamptz text output in the ISO DateStyle
// (pgoutput's format): "2024-05-01 12:00:00.123456+00" and offsets with
// minutes or seconds.
func parseTimestampTZ(s string) (time.Time, bool) {
	if strings.HasSuffix(s, " BC") {
		return time.Time{}, false
	}
	for _, layout := range []string{
		"2006-01-02 15:04:05.999999999Z07",
		"2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02 15:04:05.999999999Z07:00:00",
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
