package relay

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Type OIDs of the column types the relay converts (pg_type.oid).
const (
	oidBool        = 16
	oidBytea       = 17
	oidChar        = 18
	oidName        = 19
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidOID         = 26
	oidJSON        = 114
	oidXML         = 142
	oidFloat4      = 700
	oidFloat8      = 701
	oidBPChar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTime        = 1083
	oidTimestamp   = 1114
	oidTimestampTZ = 1184
	oidNumeric     = 1700
	oidUUID        = 2950
	oidJSONB       = 3802
)

// Settings of the Postgres connector that change how column values become
// Connect values, with Debezium's defaults as zero values.
type valueOptions struct {
	decimalMode       string // decimal.handling.mode: "precise" (default), "double", "string"
	timePrecisionMode string // time.precision.mode: "adaptive" (default), "adaptive_time_microseconds"
	binaryMode        string // binary.handling.mode: "bytes" (default), "base64", "base64-url-safe", "hex"
}

// supportedType reports whether the relay converts columns of type oid.
func supportedType(oid uint32) bool {
	switch oid {
	case oidBool, oidBytea, oidChar, oidName, oidInt8, oidInt2, oidInt4, oidText, oidOID, oidJSON, oidXML,
		oidFloat4, oidFloat8, oidBPChar, oidVarchar, oidDate, oidTime, oidTimestamp, oidTimestampTZ,
		oidNumeric, oidUUID, oidJSONB:
		return true
	}
	return false
}

// connectValue converts a column value in Postgres' text output format (as
// pgoutput streams it and as the snapshot reads it; nil is NULL) into the
// Connect value Debezium's PostgresValueConverter produces with the default
// settings (or those in o):
//
//	boolean → BOOLEAN; int2, int4, int8 → INT16, INT32, INT64; oid → INT64
//	real, double precision → FLOAT32, FLOAT64
//	numeric(p,s) → Decimal (scale s); numeric → VariableScaleDecimal {scale, value}
//	text, varchar, char, name, uuid, json, jsonb, xml → STRING (as Postgres prints it)
//	bytea → BYTES
//	date → io.debezium.time.Date: days since 1970-01-01 (INT32)
//	time(p) → Time: ms of the day (INT32) for p ≤ 3, MicroTime: µs (INT64) otherwise
//	timestamp(p) → Timestamp: ms since the epoch (INT64) for p ≤ 3, MicroTimestamp: µs otherwise
//	timestamptz(p) → ZonedTimestamp: UTC, ISO-8601 with exactly p (default 6) fraction digits
func connectValue(col Column, text *string, o valueOptions) (any, error) {
	if text == nil {
		return nil, nil
	}
	s := *text
	bad := func(err error) (any, error) {
		return nil, fmt.Errorf("column %s (type oid %d): value %q: %w", col.Name, col.Type, s, err)
	}
	switch col.Type {
	case oidBool:
		switch s {
		case "t", "true":
			return true, nil
		case "f", "false":
			return false, nil
		}
		return bad(fmt.Errorf("not a boolean"))
	case oidInt2:
		n, err := strconv.ParseInt(s, 10, 16)
		if err != nil {
			return bad(err)
		}
		return int16(n), nil
	case oidInt4:
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return bad(err)
		}
		return int32(n), nil
	case oidInt8, oidOID:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return bad(err)
		}
		return n, nil
	case oidFloat4:
		f, err := parsePgFloat(s, 32)
		if err != nil {
			return bad(err)
		}
		return float32(f), nil
	case oidFloat8:
		f, err := parsePgFloat(s, 64)
		if err != nil {
			return bad(err)
		}
		return f, nil
	case oidNumeric:
		v, err := numericValue(col, s, o)
		if err != nil {
			return bad(err)
		}
		return v, nil
	case oidText, oidVarchar, oidBPChar, oidChar, oidName, oidUUID, oidJSON, oidJSONB, oidXML:
		return s, nil
	case oidBytea:
		b, err := hex.DecodeString(strings.TrimPrefix(s, `\x`))
		if err != nil || !strings.HasPrefix(s, `\x`) {
			return bad(fmt.Errorf("not bytea hex output"))
		}
		switch o.binaryMode {
		case "base64":
			return base64.StdEncoding.EncodeToString(b), nil
		case "base64-url-safe":
			return base64.URLEncoding.EncodeToString(b), nil
		case "hex":
			return hex.EncodeToString(b), nil
		}
		return b, nil
	case oidDate:
		t, err := time.Parse("2006-01-02", s)
		if err != nil {
			return bad(err)
		}
		return int32(t.Unix() / 86400), nil
	case oidTime:
		t, err := time.Parse("15:04:05.999999", s)
		if err != nil {
			return bad(err)
		}
		micros := int64(t.Hour())*3600e6 + int64(t.Minute())*60e6 + int64(t.Second())*1e6 + int64(t.Nanosecond()/1000)
		if timePrecision(col) <= 3 && o.timePrecisionMode != "adaptive_time_microseconds" {
			return int32(micros / 1000), nil
		}
		return micros, nil
	case oidTimestamp:
		t, err := time.Parse("2006-01-02 15:04:05.999999", s)
		if err != nil {
			return bad(err)
		}
		if timePrecision(col) <= 3 {
			return t.UnixMilli(), nil
		}
		return t.UnixMicro(), nil
	case oidTimestampTZ:
		if s == "infinity" || s == "-infinity" {
			return s, nil
		}
		t, ok := parseTimestampTZ(s)
		if !ok {
			return bad(fmt.Errorf("not a timestamptz in ISO DateStyle"))
		}
		return zonedTimestamp(t, timePrecision(col)), nil
	}
	return bad(fmt.Errorf("type not supported by the relay"))
}

// timePrecision is the fractional-second precision of a time, timestamp or
// timestamptz column: its type modifier, 6 when it has none.
func timePrecision(col Column) int {
	if col.TypeMod < 0 {
		return 6
	}
	return int(col.TypeMod)
}

// zonedTimestamp formats t in UTC as Debezium's ZonedTimestamp does: exactly
// width fraction digits, or (width 0) as many as needed, none for whole
// seconds.
func zonedTimestamp(t time.Time, width int) string {
	t = t.UTC()
	if width <= 0 || width > 9 {
		return t.Format("2006-01-02T15:04:05.999999999Z")
	}
	return t.Format("2006-01-02T15:04:05." + strings.Repeat("0", width) + "Z")
}

func parsePgFloat(s string, bits int) (float64, error) {
	switch s {
	case "NaN":
		return math.NaN(), nil
	case "Infinity":
		return math.Inf(1), nil
	case "-Infinity":
		return math.Inf(-1), nil
	}
	return strconv.ParseFloat(s, bits)
}

// numericValue converts a numeric per decimal.handling.mode (see
// PostgresValueConverter.convertDecimal).
func numericValue(col Column, s string, o valueOptions) (any, error) {
	if s == "NaN" || s == "Infinity" || s == "-Infinity" {
		switch o.decimalMode {
		case "string":
			return map[string]string{"NaN": "NAN", "Infinity": "POSITIVE_INFINITY", "-Infinity": "NEGATIVE_INFINITY"}[s], nil
		case "double":
			return parsePgFloat(s, 64)
		}
		return nil, fmt.Errorf("special value in precise decimal.handling.mode")
	}
	d, ok := parseDecimal(s)
	if !ok {
		return nil, fmt.Errorf("not a numeric")
	}
	variable := col.TypeMod < 0
	if !variable {
		scale := int32((col.TypeMod - 4) & 0xffff)
		d = d.setScale(scale)
	}
	switch o.decimalMode {
	case "double":
		return d.float64(), nil
	case "string":
		return d.plainString(), nil
	}
	if variable {
		d = d.stripTrailingZeros()
		return &structValue{fields: []field{{"scale", d.scale}, {"value", d.bytes()}}}, nil
	}
	return d, nil
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
