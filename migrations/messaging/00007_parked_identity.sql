-- A parked message is identified by what it is as well as where it was.
--
-- Before, (consumer, topic, partition, offset) was unique and a park that
-- hit an existing row counted as done. But offsets are reused — a topic
-- created again, a partition that lost records and was refilled (which the
-- system handles by reading it again from the start while the relay
-- re-publishes) — and a new poison message at such an offset was then
-- neither applied nor parked, its offset committed: lost. Now the row also
-- holds a SHA-256 digest of the record (its topic's id, key, value and
-- headers), and only the same record at the same place is the same parked
-- message.
--
-- And the record is kept as it came: the key and the headers as bytes (in
-- their order, names and values side by side). As text and jsonb they
-- refused a key that is not UTF-8 or a NUL in a header value, so such a
-- record could never be parked and held its partition forever.

-- +goose Up
ALTER TABLE parkedmessage DROP CONSTRAINT parkedmessage_consumer_topic_partition_offset_key;
ALTER TABLE parkedmessage
    ALTER COLUMN key TYPE bytea USING convert_to(key, 'UTF8'),
    ADD COLUMN topic_id      uuid,
    ADD COLUMN event_id      uuid,
    ADD COLUMN header_keys   bytea[],
    ADD COLUMN header_values bytea[],
    ADD COLUMN digest        bytea;
-- Rows parked before: unique per place already, so any digest unique per
-- row identifies them.
UPDATE parkedmessage SET
    header_keys   = ARRAY(SELECT convert_to(h.key, 'UTF8') FROM jsonb_each_text(headers) h ORDER BY h.key),
    header_values = ARRAY(SELECT convert_to(h.value, 'UTF8') FROM jsonb_each_text(headers) h ORDER BY h.key),
    event_id      = CASE WHEN headers->>'id' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                         THEN (headers->>'id')::uuid END,
    digest        = sha256(convert_to('parked before 00007: ' || id, 'UTF8'));
ALTER TABLE parkedmessage
    ALTER COLUMN header_keys SET NOT NULL,
    ALTER COLUMN header_values SET NOT NULL,
    ALTER COLUMN digest SET NOT NULL,
    ADD CONSTRAINT parkedmessage_headers_check CHECK (cardinality(header_keys) = cardinality(header_values)),
    DROP COLUMN headers;
CREATE UNIQUE INDEX parkedmessage_message_key ON parkedmessage (consumer, topic, partition, "offset", digest);

-- +goose Down
-- Rows that the old schema cannot hold (a key or header that is not text,
-- several messages at one place) keep what text can say.
DROP INDEX parkedmessage_message_key;
ALTER TABLE parkedmessage ADD COLUMN headers jsonb;
UPDATE parkedmessage SET headers = coalesce((
    SELECT jsonb_object_agg(convert_from(k, 'SQL_ASCII'), replace(encode(v, 'escape'), '\000', ''))
    FROM unnest(header_keys, header_values) AS h(k, v)), '{}');
DELETE FROM parkedmessage p USING parkedmessage q
    WHERE p.consumer = q.consumer AND p.topic = q.topic AND p.partition = q.partition
      AND p."offset" = q."offset" AND p.id > q.id;
ALTER TABLE parkedmessage
    DROP CONSTRAINT parkedmessage_headers_check,
    ALTER COLUMN headers SET NOT NULL,
    ALTER COLUMN key TYPE text USING replace(encode(key, 'escape'), '\000', ''),
    DROP COLUMN digest, DROP COLUMN header_values, DROP COLUMN header_keys,
    DROP COLUMN event_id, DROP COLUMN topic_id,
    ADD CONSTRAINT parkedmessage_consumer_topic_partition_offset_key UNIQUE (consumer, topic, partition, "offset");
