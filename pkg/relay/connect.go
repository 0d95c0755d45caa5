package relay

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// This file is a small model of Kafka Connect's data (org.apache.kafka.connect
// .data): the values Debezium hands to its transforms and to the worker's
// converters. A value is one of:
//
//	nil                     null
//	string                  STRING (text, uuid, json, jsonb, ZonedTimestamp, ...)
//	bool                    BOOLEAN
//	int16, int32, int64     INT16, INT32, INT64 (and Debezium's int-based time types)
//	float32, float64        FLOAT32, FLOAT64
//	[]byte                  BYTES
//	decimal                 BYTES with the logical type org.apache.kafka.connect.data.Decimal
//	*structValue            STRUCT, fields in schema order
//	[]any                   ARRAY
//
// and the converters turn it into record bytes exactly as Connect does:
// StringConverter (Object.toString), JsonConverter with schemas disabled
// (Jackson) and SimpleHeaderConverter (Values.convertToString).

// field is one field of a struct value.
type field struct {
	name  string
	value any
}

// structValue is a Connect Struct: its fields in schema order.
type structValue struct {
	fields []field
}

func (s *structValue) get(name string) (any, bool) {
	for _, f := range s.fields {
		if f.name == name {
			return f.value, true
		}
	}
	return nil, false
}

// errJavaIdentity is returned for values whose Java toString is an identity
// hash ("[B@1b6d3586"): no emulation can reproduce it.
var errJavaIdentity = errors.New("StringConverter would write Java's identity string of a byte array")

// javaString is Object.toString of a Connect value: what StringConverter
// writes and what Struct.toString nests.
func javaString(v any) (string, error) {
	var b strings.Builder
	if err := writeJavaString(&b, v); err != nil {
		return "", err
	}
	return b.String(), nil
}

func writeJavaString(b *strings.Builder, v any) error {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case string:
		b.WriteString(v)
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case int16:
		b.WriteString(strconv.FormatInt(int64(v), 10))
	case int32:
		b.WriteString(strconv.FormatInt(int64(v), 10))
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case float32:
		b.WriteString(javaFloat(float64(v), 32))
	case float64:
		b.WriteString(javaFloat(v, 64))
	case decimal:
		b.WriteString(v.String())
	case []byte:
		return errJavaIdentity
	case *structValue: // Struct.toString: null fields are left out
		b.WriteString("Struct{")
		first := true
		for _, f := range v.fields {
			if f.value == nil {
				continue
			}
			if !first {
				b.WriteByte(',')
			}
			first = false
			b.WriteString(f.name)
			b.WriteByte('=')
			if err := writeJavaString(b, f.value); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case []any: // ArrayList.toString
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			if err := writeJavaString(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	default:
		return fmt.Errorf("no Connect value of Go type %T", v)
	}
	return nil
}

// headerString is SimpleHeaderConverter.fromConnectHeader: nil for null,
// otherwise Values.convertToString.
func headerString(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	var b strings.Builder
	if err := writeHeaderString(&b, v, false); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

// writeHeaderString is Values.append: embedded strings are quoted (with
// backslashes and quotes escaped), bytes are base64, structs and lists use
// {"name":value} and [a,b] without spaces.
func writeHeaderString(b *strings.Builder, v any, embedded bool) error {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case string:
		if embedded {
			b.WriteByte('"')
			b.WriteString(strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), `"`, `\"`))
			b.WriteByte('"')
		} else {
			b.WriteString(v)
		}
	case []byte:
		s := base64.StdEncoding.EncodeToString(v)
		if embedded {
			s = `"` + s + `"`
		}
		b.WriteString(s)
	case *structValue:
		b.WriteByte('{')
		for i, f := range v.fields {
			if i > 0 {
				b.WriteByte(',')
			}
			_ = writeHeaderString(b, f.name, true)
			b.WriteByte(':')
			if err := writeHeaderString(b, f.value, true); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeHeaderString(b, e, true); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	default: // numbers and booleans: their toString
		return writeJavaString(b, v)
	}
	return nil
}

// jsonOptions are JsonConverter's settings that change its output.
type jsonOptions struct {
	// decimalNumeric is decimal.format=NUMERIC: decimals as JSON numbers
	// instead of the base64 of their unscaled bytes (BASE64, the default).
	decimalNumeric bool
}

// writeJSON writes v as JsonConverter (schemas disabled) serialises it with
// Jackson: no spaces, fields in schema order, null fields kept, bytes as
// base64, non-finite floats as strings.
func writeJSON(b *bytes.Buffer, v any, o jsonOptions) error {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case string:
		writeJacksonString(b, v)
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case int16:
		b.WriteString(strconv.FormatInt(int64(v), 10))
	case int32:
		b.WriteString(strconv.FormatInt(int64(v), 10))
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case float32:
		writeJacksonFloat(b, float64(v), 32)
	case float64:
		writeJacksonFloat(b, v, 64)
	case []byte:
		writeJacksonString(b, base64.StdEncoding.EncodeToString(v))
	case decimal:
		if o.decimalNumeric {
			b.WriteString(v.String())
		} else {
			writeJacksonString(b, base64.StdEncoding.EncodeToString(v.bytes()))
		}
	case *structValue:
		b.WriteByte('{')
		for i, f := range v.fields {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJacksonString(b, f.name)
			b.WriteByte(':')
			if err := writeJSON(b, f.value, o); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeJSON(b, e, o); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	default:
		return fmt.Errorf("no Connect value of Go type %T", v)
	}
	return nil
}

func writeJacksonFloat(b *bytes.Buffer, f float64, bits int) {
	if math.IsNaN(f) || math.IsInf(f, 0) { // WRITE_NAN_AS_STRINGS, on by default
		writeJacksonString(b, javaFloat(f, bits))
		return
	}
	b.WriteString(javaFloat(f, bits))
}

const hexUpper = "0123456789ABCDEF"

// writeJacksonString quotes s as Jackson does: the short escapes for ", \,
// \b, \t, \n, \f and \r, \u00XX (upper-case hex) for other control
// characters, every other character as is (UTF-8, no HTML escaping).
func writeJacksonString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if c < 0x20 {
				b.WriteString(`\u00`)
				b.WriteByte(hexUpper[c>>4])
				b.WriteByte(hexUpper[c&0xF])
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
}
