package relay_test

import (
	"time"

	"github.com/sagabox/sagabox/pkg/relay"
)

// withoutRouting drops the project file's EventRouter options: Debezium's
// defaults apply.
var withoutRouting = map[string]string{
	"transforms.outbox.route.by.field": "", "transforms.outbox.route.topic.replacement": "",
	"transforms.outbox.table.field.event.id": "", "transforms.outbox.table.field.event.key": "",
	"transforms.outbox.table.field.event.payload": "", "transforms.outbox.table.fields.additional.placement": "",
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func contractCases() []contractCase {
	row := insertOutbox(eventID, "credit-approval", `'{"b": 2, "a": 1}'`)
	id := h("id", eventID)
	return []contractCase{{
		// The project's outbox connectors. Headers: the extended context
		// headers (EventDispatcher), then "id" and the placements in order
		// (EventRouterDelegate.apply); values through SimpleHeaderConverter:
		// text as is, so tracestate keeps its spacing; a NULL column is a
		// header with a null value. Key and value through StringConverter:
		// aggregateid; the payload as Postgres prints jsonb. Timestamp: ts_ms,
		// the time Debezium processed the change (getEventTimestampMs).
		name: "order-outbox file", file: "order-outbox",
		sql: []string{row, `INSERT INTO outboxevent (id, aggregatetype, aggregateid, type, payload)
			VALUES ('` + eventID2 + `', 'payment', 'saga-1', 'REQUEST', '{}')`},
		want: []contractRecord{
			{Topic: "credit-approval.request", Partition: -1, Key: b("saga-1"), Value: b(`{"a": 1, "b": 2}`),
				Headers: ctx4("order", id, h("eventType", "REQUEST"), h("traceparent", tp), h("tracestate", "vendor=x , other=y"))},
			{Topic: "payment.request", Partition: -1, Key: b("saga-1"), Value: b(`{}`),
				Headers: ctx4("order", h("id", eventID2), h("eventType", "REQUEST"), h("traceparent", nil), h("tracestate", nil))},
		},
	}, {
		// EventRouterConfigDefinition defaults: route.by.field aggregatetype,
		// route.topic.replacement outbox.event.${routedByValue}, id/aggregateid
		// /payload columns, no placements.
		name: "eventrouter defaults", file: "order-outbox", opts: withoutRouting, sql: []string{row},
		want: []contractRecord{{Topic: "outbox.event.credit-approval", Partition: -1, Key: b("saga-1"), Value: b(`{"a": 1, "b": 2}`), Headers: ctx4("order", id)}},
	}, {
		// RegexRouter.apply: the topic is Matcher.replaceFirst only when the
		// regex matches the whole routed value (Matcher.matches); otherwise
		// the value itself.
		name: "route.topic.regex", file: "order-outbox",
		opts: map[string]string{"transforms.outbox.route.topic.regex": `credit-(?<rest>.*)`, "transforms.outbox.route.topic.replacement": `c.${rest}`,
			"transforms.outbox.table.fields.additional.placement": ""},
		sql: []string{row, insertOutbox(eventID2, "xcredit-approval", `'{}'`)},
		want: []contractRecord{
			{Topic: "c.approval", Partition: -1, Key: b("saga-1"), Value: b(`{"a": 1, "b": 2}`), Headers: ctx4("order", id)},
			{Topic: "xcredit-approval", Partition: -1, Key: b("saga-1"), Value: b(`{}`), Headers: ctx4("order", h("id", eventID2))},
		},
	}, {
		// route.by.field, table.field.event.id/key/payload name other
		// columns; the uuid key through StringConverter is its text.
		name: "field names", file: "order-outbox",
		opts: merge(withoutRouting, map[string]string{"transforms.outbox.route.by.field": "type",
			"transforms.outbox.table.field.event.id": "aggregateid", "transforms.outbox.table.field.event.key": "id",
			"transforms.outbox.table.field.event.payload": "aggregatetype"}),
		sql:  []string{row},
		want: []contractRecord{{Topic: "outbox.event.REQUEST", Partition: -1, Key: b(eventID), Value: b("credit-approval"), Headers: ctx4("order", h("id", "saga-1"))}},
	}, {
		// table.field.event.timestamp: a timestamp column (MicroTimestamp)
		// divided by 1000 becomes the record timestamp (getEventTimestampMs).
		name: "table.field.event.timestamp", file: "order-outbox",
		opts: map[string]string{"transforms.outbox.table.field.event.timestamp": "occurred_at", "transforms.outbox.table.fields.additional.placement": ""},
		ddl:  []string{`ALTER TABLE outboxevent ADD COLUMN occurred_at timestamp`},
		sql: []string{`INSERT INTO outboxevent (id, aggregatetype, aggregateid, type, payload, occurred_at)
			VALUES ('` + eventID + `', 'payment', 'saga-1', 'REQUEST', '{}', '2020-01-02 03:04:05.678999')`},
		want: []contractRecord{{Topic: "payment.request", Partition: -1, Key: b("saga-1"), Value: b(`{}`), Headers: ctx4("order", id), Time: time.UnixMilli(1577934245678)}},
	}, {
		// route.tombstone.on.empty.payload (trimmed, case-insensitive
		// boolean): a NULL payload, or one blank after String.trim, is a
		// tombstone (isDeleteEvent).
		name: "route.tombstone.on.empty.payload", file: "order-outbox",
		opts: map[string]string{"transforms.outbox.route.tombstone.on.empty.payload": " TRUE ", "transforms.outbox.table.fields.additional.placement": ""},
		ddl:  []string{`ALTER TABLE outboxevent ALTER COLUMN payload TYPE text, ALTER COLUMN payload DROP NOT NULL`},
		sql:  []string{insertOutbox(eventID, "payment", `E' \t '`), insertOutbox(eventID2, "payment", `NULL`)},
		want: []contractRecord{
			{Topic: "payment.request", Partition: -1, Key: b("saga-1"), Headers: ctx4("order", id)},
			{Topic: "payment.request", Partition: -1, Key: b("saga-1"), Headers: ctx4("order", h("id", eventID2))},
		},
	}, {
		// Without it, a blank payload is the value as is.
		name: "blank payload", file: "order-outbox", opts: map[string]string{"transforms.outbox.table.fields.additional.placement": ""},
		ddl:  []string{`ALTER TABLE outboxevent ALTER COLUMN payload TYPE text`},
		sql:  []string{insertOutbox(eventID, "payment", `E' \t '`)},
		want: []contractRecord{{Topic: "payment.request", Partition: -1, Key: b("saga-1"), Value: b(" \t "), Headers: ctx4("order", id)}},
	}, {
		// table.fields.additional.error.on.missing=false: a placement whose
		// column the table lacks is skipped.
		name: "error.on.missing", file: "order-outbox",
		opts: map[string]string{"transforms.outbox.table.fields.additional.placement": "type:header:eventType,nope:header,tracestate:header",
			"transforms.outbox.table.fields.additional.error.on.missing": "false"},
		sql:  []string{row},
		want: []contractRecord{{Topic: "credit-approval.request", Partition: -1, Key: b("saga-1"), Value: b(`{"a": 1, "b": 2}`), Headers: ctx4("order", id, h("eventType", "REQUEST"), h("tracestate", "vendor=x , other=y"))}},
	}, {
		// :envelope: the value is a struct {payload, <alias>...}
		// (getSchemaBuilder); StringConverter writes Struct.toString.
		name: "envelope placement, StringConverter", file: "order-outbox",
		opts: map[string]string{"transforms.outbox.table.fields.additional.placement": "type:envelope:eventType,aggregateid:envelope"},
		sql:  []string{row},
		want: []contractRecord{{Topic: "credit-approval.request", Partition: -1, Key: b("saga-1"),
			Value: b(`Struct{payload={"a": 1, "b": 2},eventType=REQUEST,aggregateid=saga-1}`), Headers: ctx4("order", id)}},
	}, {
		// The same with JsonConverter: the struct as a JSON object, the
		// jsonb payload a JSON string.
		name: "envelope placement, JsonConverter", file: "order-outbox",
		opts: map[string]string{"transforms.outbox.table.fields.additional.placement": "type:envelope:eventType",
			"value.converter": relay.JSONConverter, "value.converter.schemas.enable": "false"},
		sql:  []string{row},
		want: []contractRecord{{Topic: "credit-approval.request", Partition: -1, Key: b("saga-1"), Value: b(`{"payload":"{\"a\": 1, \"b\": 2}","eventType":"REQUEST"}`), Headers: ctx4("order", id)}},
	}, {
		// :partition: an int4 column's value is the record's partition.
		name: "partition placement", file: "order-outbox",
		opts: map[string]string{"transforms.outbox.table.fields.additional.placement": "part:partition"},
		ddl:  []string{`ALTER TABLE outboxevent ADD COLUMN part int4`},
		sql: []string{`INSERT INTO outboxevent (id, aggregatetype, aggregateid, type, payload, part)
			VALUES ('` + eventID + `', 'payment', 'saga-1', 'REQUEST', '{}', 2)`},
		want: []contractRecord{{Topic: "payment.request", Partition: 2, Key: b("saga-1"), Value: b(`{}`), Headers: ctx4("order", id)}},
	}, {
		// Header values are the Connect values as SimpleHeaderConverter
		// prints them (Values.convertToString): a boolean "true", a
		// timestamptz its ZonedTimestamp (UTC, six fraction digits), a
		// numeric(10,2) the BigDecimal, an int8 its digits, a date the days
		// since the epoch (io.debezium.time.Date).
		name: "header values converted by Connect", file: "order-outbox",
		opts: map[string]string{"transforms.outbox.table.fields.additional.placement": "flag:header,happened:header,amount:header,n:header,d:header"},
		ddl:  []string{`ALTER TABLE outboxevent ADD COLUMN flag boolean, ADD COLUMN happened timestamptz, ADD COLUMN amount numeric(10,2), ADD COLUMN n int8, ADD COLUMN d date`},
		sql: []string{`INSERT INTO outboxevent (id, aggregatetype, aggregateid, type, payload, flag, happened, amount, n, d)
			VALUES ('` + eventID + `', 'payment', 'saga-1', 'REQUEST', '{}', true, '2020-01-02 04:04:05+01', 7.5, 42, '2020-01-02')`},
		want: []contractRecord{{Topic: "payment.request", Partition: -1, Key: b("saga-1"), Value: b(`{}`), Headers: ctx4("order", id,
			h("flag", "true"), h("happened", "2020-01-02T03:04:05.000000Z"), h("amount", "7.50"), h("n", "42"), h("d", "18263"))}},
	}, {
		// Enumerations and booleans are trimmed and case-insensitive
		// (EnumeratedValue.parse, Configuration.getBoolean); placements are
		// trimmed around each part (parseAdditionalFieldsConfig).
		name: "option values", file: "order-outbox",
		opts: map[string]string{"transforms.outbox.table.fields.additional.placement": " type : Header : eventType ",
			"transforms.outbox.table.op.invalid.behavior": " Warn ", "extended.headers.enabled": " FALSE "},
		sql:  []string{row},
		want: []contractRecord{{Topic: "credit-approval.request", Partition: -1, Key: b("saga-1"), Value: b(`{"a": 1, "b": 2}`), Headers: []relay.Header{id, h("eventType", "REQUEST")}}},
	}, {
		// table.include.list entries are case-insensitive regular
		// expressions matching the whole schema.table name.
		name: "table.include.list regex", file: "order-outbox",
		opts: map[string]string{"table.include.list": `PUBLIC\.OUTBOX.*`, "transforms.outbox.table.fields.additional.placement": ""},
		sql:  []string{row},
		want: []contractRecord{{Topic: "credit-approval.request", Partition: -1, Key: b("saga-1"), Value: b(`{"a": 1, "b": 2}`), Headers: ctx4("order", id)}},
	}, {
		// table.expand.json.payload: the payload string parsed and turned
		// into a struct (JsonSchemaData; nulls dropped by default), written
		// by JsonConverter.
		name: "table.expand.json.payload", file: "order-outbox",
		opts: map[string]string{"transforms.outbox.table.expand.json.payload": "true", "transforms.outbox.table.fields.additional.placement": "",
			"value.converter": relay.JSONConverter, "value.converter.schemas.enable": "false"},
		sql:  []string{insertOutbox(eventID, "payment", `'{"amount": 10.50, "items": [1, 2], "note": null}'`)},
		want: []contractRecord{{Topic: "payment.request", Partition: -1, Key: b("saga-1"), Value: b(`{"items":[1,2],"amount":10.5}`), Headers: ctx4("order", id)}},
	}, {
		// table.op.invalid.behavior=warn: an update is skipped
		// (handleUnexpectedOperation); deletes are ignored.
		name: "updates and deletes", file: "order-outbox", opts: map[string]string{"transforms.outbox.table.fields.additional.placement": ""},
		sql: []string{row, `UPDATE outboxevent SET type = 'X'`, `DELETE FROM outboxevent`, insertOutbox(eventID2, "credit-approval", `'{}'`)},
		want: []contractRecord{
			{Topic: "credit-approval.request", Partition: -1, Key: b("saga-1"), Value: b(`{"a": 1, "b": 2}`), Headers: ctx4("order", id)},
			{Topic: "credit-approval.request", Partition: -1, Key: b("saga-1"), Value: b(`{}`), Headers: ctx4("order", h("id", eventID2))},
		},
	}, {
		// snapshot.mode=initial (the default): rows that exist when the
		// connector first starts are read (op "r") and routed like inserts.
		name: "snapshot.mode initial", file: "order-outbox", before: []string{row},
		want: []contractRecord{{Topic: "credit-approval.request", Partition: -1, Key: b("saga-1"), Value: b(`{"a": 1, "b": 2}`),
			Headers: ctx4("order", id, h("eventType", "REQUEST"), h("traceparent", tp), h("tracestate", "vendor=x , other=y"))}},
	}, {
		// The project's sagastate connector: ExtractNewRecordState with
		// JsonConverter. Key: the primary key struct; value: the row in
		// column order (uuid, text and jsonb as strings, int4 a number,
		// timestamptz a ZonedTimestamp with six fraction digits); no record
		// timestamp (the producer stamps it). A delete is not published:
		// the file says skipped.operations=d,t, and EventDispatcher drops a
		// skipped operation's change before its receiver, so neither the
		// delete nor its tombstone leaves (the removal of ended sagas after
		// their retention is not a change of their state).
		name: "order-sagastate file", file: "order-sagastate", sql: sagastateSQL,
		want: sagastateRecords(false),
	}, {
		// The same connector with the default skipped.operations (t): a
		// delete, under the default delete.tombstone.handling.mode=tombstone,
		// is the extracted "after" field: null with its schema, which
		// JsonConverter writes as null.
		name: "order-sagastate, deletes published", file: "order-sagastate", opts: map[string]string{"skipped.operations": "t"},
		sql: sagastateSQL, want: sagastateRecords(true),
	}, {
		// Debezium's default value converters (PostgresValueConverter,
		// TemporalPrecisionMode.ADAPTIVE, decimal.handling.mode=precise,
		// binary.handling.mode=bytes) through JsonConverter: numeric(10,2) a
		// Decimal, its unscaled bytes in base64 (decimal.format BASE64);
		// numeric a VariableScaleDecimal {scale, value}; timestamp a
		// MicroTimestamp, timestamp(3) a Timestamp (ms); date days; time
		// MicroTime; timestamptz(3) three fraction digits; float8 as Java
		// prints a double; bytea base64; json a string.
		name: "value types",
		ddl: []string{`CREATE TABLE t (id int8 PRIMARY KEY, n numeric(10,2), v numeric, ts timestamp, ts3 timestamp(3), d date,
			tm time, tz3 timestamptz(3), ok boolean, f float8, s int2, by bytea, j json)`},
		sql: []string{`INSERT INTO t VALUES (1, 7.5, 12.50, '2020-01-02 03:04:05.123456', '2020-01-02 03:04:05.123', '2020-01-02',
			'03:04:05.5', '2020-01-02 03:04:05.1+01', true, 1e20, -3, '\x04e2', '{"x": [1]}')`},
		want: []contractRecord{{Topic: "p.public.t", Partition: -1, Key: b(`{"id":1}`), Headers: ctx4("p"),
			Value: b(`{"id":1,"n":"Au4=","v":{"scale":1,"value":"fQ=="},"ts":1577934245123456,"ts3":1577934245123,"d":18263,` +
				`"tm":11045500000,"tz3":"2020-01-02T02:04:05.100Z","ok":true,"f":1.0E20,"s":-3,"by":"BOI=","j":"{\"x\": [1]}"}`)}},
	}, {
		// delete.tombstone.handling.mode=rewrite: "__deleted" "false" on
		// changes, the old row with "__deleted" "true" on a delete.
		name: "delete.tombstone.handling.mode rewrite",
		opts: map[string]string{"transforms.unwrap.delete.tombstone.handling.mode": "Rewrite"},
		ddl:  []string{`CREATE TABLE t (id int8 PRIMARY KEY, s text)`, `ALTER TABLE t REPLICA IDENTITY FULL`},
		sql:  []string{`INSERT INTO t VALUES (1, 'a')`, `DELETE FROM t`},
		want: []contractRecord{
			{Topic: "p.public.t", Partition: -1, Key: b(`{"id":1}`), Value: b(`{"id":1,"s":"a","__deleted":"false"}`), Headers: ctx4("p")},
			{Topic: "p.public.t", Partition: -1, Key: b(`{"id":1}`), Value: b(`{"id":1,"s":"a","__deleted":"true"}`), Headers: ctx4("p")},
		},
	}, {
		// delete-to-tombstone: a real tombstone (no value schema either);
		// with tombstones.on.delete (default true) the connector's own
		// tombstone is dropped.
		name: "delete.tombstone.handling.mode delete-to-tombstone",
		opts: map[string]string{"transforms.unwrap.delete.tombstone.handling.mode": "delete-to-tombstone"},
		ddl:  []string{`CREATE TABLE t (id int8 PRIMARY KEY, s text)`},
		sql:  []string{`INSERT INTO t VALUES (1, 'a')`, `DELETE FROM t`},
		want: []contractRecord{
			{Topic: "p.public.t", Partition: -1, Key: b(`{"id":1}`), Value: b(`{"id":1,"s":"a"}`), Headers: ctx4("p")},
			{Topic: "p.public.t", Partition: -1, Key: b(`{"id":1}`), Headers: ctx4("p")},
		},
	}}
}

// sagastateSQL writes a sagastate row, updates and deletes it.
var sagastateSQL = []string{
	`INSERT INTO sagastate (id, type, payload, current_step, step_status, status, created_at, updated_at, status_since)
		VALUES ('` + eventID + `', 'order-placement', '{"order_id": 1}', 'payment', '{"payment": "STARTED"}', 'STARTED',
		'2024-05-01 12:00:00.5+00', '2024-05-01 14:00:00+02', '2024-05-01 12:00:00.5+00')`,
	`UPDATE sagastate SET status = 'SUCCEEDED', version = 1`,
	`DELETE FROM sagastate`,
}

// sagastateRecords are the records of sagastateSQL through the sagastate
// connector: the row after the insert and after the update, and when
// deletes are published the delete's null.
func sagastateRecords(deletes bool) []contractRecord {
	key := b(`{"id":"` + eventID + `"}`)
	row := func(status string, version int) []byte {
		return b(`{"id":"` + eventID + `","type":"order-placement","payload":"{\"order_id\": 1}","current_step":"payment",` +
			`"step_status":"{\"payment\": \"STARTED\"}","status":"` + status + `","version":` + string(rune('0'+version)) +
			`,"created_at":"2024-05-01T12:00:00.500000Z","updated_at":"2024-05-01T12:00:00.000000Z"` +
			`,"attempt":0,"deadline":null,"status_since":"2024-05-01T12:00:00.500000Z","waits":"{}","definition_version":1}`)
	}
	out := []contractRecord{
		{Topic: "sagas.public.sagastate", Partition: -1, Key: key, Value: row("STARTED", 0), Headers: ctx4("sagas")},
		{Topic: "sagas.public.sagastate", Partition: -1, Key: key, Value: row("SUCCEEDED", 1), Headers: ctx4("sagas")},
	}
	if deletes {
		out = append(out, contractRecord{Topic: "sagas.public.sagastate", Partition: -1, Key: key, Value: b("null"), Headers: ctx4("sagas")})
	}
	return out
}
