package relay

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"math/big"
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

// decimal is a java.math.BigDecimal: unscaled × 10^-scale.
type decimal struct {
	unscaled *big.Int
	scale    int32
}

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

// javaFloat formats f as Java's Double.toString (bits 64) or Float.toString
// (bits 32) do since JDK 19: the shortest digits that identify the value,
// plain between 10^-3 and 10^7, computerized scientific notation outside.
func javaFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	// Shortest round-tripping digits and the decimal exponent.
	e := strconv.FormatFloat(f, 'e', -1, bits) // "-1.2345e+07"
	sign := ""
	if e[0] == '-' {
		sign, e = "-", e[1:]
	}
	mant, expStr, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expStr)
	digits := strings.Replace(mant, ".", "", 1)
	abs := math.Abs(f)
	if abs >= 1e-3 && abs < 1e7 {
		var intPart, frac string
		if exp >= 0 {
			if len(digits) <= exp+1 {
				intPart, frac = digits+strings.Repeat("0", exp+1-len(digits)), "0"
			} else {
				intPart, frac = digits[:exp+1], digits[exp+1:]
			}
		} else {
			intPart, frac = "0", strings.Repeat("0", -exp-1)+digits
		}
		return sign + intPart + "." + frac
	}
	frac := digits[1:]
	if frac == "" {
		frac = "0"
	}
	return sign + digits[:1] + "." + frac + "E" + strconv.Itoa(exp)
}

// parseDecimal parses a Postgres numeric in its text form.
func parseDecimal(s string) (decimal, bool) {
	intPart, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(intPart, "-")
	intPart = strings.TrimPrefix(strings.TrimPrefix(intPart, "-"), "+")
	u, ok := new(big.Int).SetString(intPart+frac, 10)
	if !ok || intPart+frac == "" {
		return decimal{}, false
	}
	if neg {
		u.Neg(u)
	}
	return decimal{unscaled: u, scale: int32(len(frac))}, true
}

// setScale is BigDecimal.setScale for a scale at least the current one
// (exact, no rounding).
func (d decimal) setScale(scale int32) decimal {
	if scale <= d.scale {
		return d
	}
	u := new(big.Int).Mul(d.unscaled, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale-d.scale)), nil))
	return decimal{unscaled: u, scale: scale}
}

// stripTrailingZeros is BigDecimal.stripTrailingZeros followed, as Debezium
// does for variable-scale numerics, by a scale of at least zero.
func (d decimal) stripTrailingZeros() decimal {
	u, s := new(big.Int).Set(d.unscaled), d.scale
	ten, m := big.NewInt(10), new(big.Int)
	for s > 0 && u.Sign() != 0 {
		q, r := new(big.Int).QuoRem(u, ten, m)
		if r.Sign() != 0 {
			break
		}
		u, s = q, s-1
	}
	if u.Sign() == 0 {
		s = 0
	}
	return decimal{unscaled: u, scale: s}
}

// String is BigDecimal.toString: plain notation unless the scale is
// negative or the adjusted exponent is below -6.
func (d decimal) String() string {
	digits := new(big.Int).Abs(d.unscaled).String()
	sign := ""
	if d.unscaled.Sign() < 0 {
		sign = "-"
	}
	adjusted := -int64(d.scale) + int64(len(digits)-1)
	if d.scale >= 0 && adjusted >= -6 {
		if d.scale == 0 {
			return sign + digits
		}
		n := int(d.scale)
		if len(digits) > n {
			return sign + digits[:len(digits)-n] + "." + digits[len(digits)-n:]
		}
		return sign + "0." + strings.Repeat("0", n-len(digits)) + digits
	}
	s := digits[:1]
	if len(digits) > 1 {
		s += "." + digits[1:]
	}
	exp := strconv.FormatInt(adjusted, 10)
	if adjusted > 0 {
		exp = "+" + exp
	}
	return sign + s + "E" + exp
}

// plainString is BigDecimal.toPlainString.
func (d decimal) plainString() string {
	if d.scale <= 0 {
		if d.unscaled.Sign() == 0 {
			return "0"
		}
		return d.unscaled.String() + strings.Repeat("0", int(-d.scale))
	}
	return d.plain()
}

func (d decimal) plain() string {
	digits := new(big.Int).Abs(d.unscaled).String()
	sign := ""
	if d.unscaled.Sign() < 0 {
		sign = "-"
	}
	n := int(d.scale)
	if len(digits) > n {
		return sign + digits[:len(digits)-n] + "." + digits[len(digits)-n:]
	}
	return sign + "0." + strings.Repeat("0", n-len(digits)) + digits
}

// bytes is BigInteger.toByteArray of the unscaled value: minimal
// big-endian two's complement.
func (d decimal) bytes() []byte {
	u := d.unscaled
	if u.Sign() >= 0 {
		b := u.Bytes()
		if len(b) == 0 || b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		return b
	}
	// Two's complement of a negative number: 2^(8n) + u for the smallest n
	// whose range holds u.
	n := (u.BitLen()+8)/8 + 1
	m := new(big.Int).Lsh(big.NewInt(1), uint(8*n))
	m.Add(m, u)
	b := m.Bytes()
	for len(b) < n {
		b = append([]byte{0xff}, b...)
	}
	for len(b) > 1 && b[0] == 0xff && b[1]&0x80 != 0 {
		b = b[1:]
	}
	return b
}

// float64 is BigDecimal.doubleValue: the nearest double.
func (d decimal) float64() float64 {
	f, _ := strconv.ParseFloat(d.plainString(), 64)
	return f
}
