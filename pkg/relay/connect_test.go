package relay

import (
	"bytes"
	"math"
	"math/big"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Expectations from the Java platform and Kafka Connect, as the converters
// see them: Double.toString / Float.toString (JDK 19+, shortest digits),
// BigDecimal.toString and BigInteger.toByteArray, Jackson's string escaping
// (CharTypes.sOutputEscapes128), Values.convertToString (SimpleHeaderConverter)
// and Struct.toString (StringConverter).

func TestJavaFloat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		f    float64
		bits int
		want string
	}{
		{1, 64, "1.0"}, {100, 64, "100.0"}, {1e7, 64, "1.0E7"}, {9999999, 64, "9999999.0"},
		{12345678.9, 64, "1.23456789E7"}, {1.5e20, 64, "1.5E20"}, {0.001, 64, "0.001"},
		{1e-4, 64, "1.0E-4"}, {123456.789, 64, "123456.789"}, {-2.5, 64, "-2.5"},
		{0.30000000000000004, 64, "0.30000000000000004"}, {0, 64, "0.0"}, {math.Copysign(0, -1), 64, "-0.0"},
		{math.NaN(), 64, "NaN"}, {math.Inf(1), 64, "Infinity"}, {math.Inf(-1), 64, "-Infinity"},
		{float64(float32(1.1)), 32, "1.1"}, {float64(float32(3.4028235e38)), 32, "3.4028235E38"},
	} {
		if got := javaFloat(tc.f, tc.bits); got != tc.want {
			t.Errorf("javaFloat(%v, %d) = %q, want %q", tc.f, tc.bits, got, tc.want)
		}
	}
}

func TestDecimal(t *testing.T) {
	t.Parallel()
	dec := func(u int64, scale int32) decimal { return decimal{unscaled: big.NewInt(u), scale: scale} }
	for _, tc := range []struct {
		d             decimal
		str, plain, b string
	}{
		{dec(1250, 2), "12.50", "12.50", "04e2"},
		{dec(1, 7), "1E-7", "0.0000001", "01"},
		{dec(-1, 6), "-0.000001", "-0.000001", "ff"},
		{dec(123, -2), "1.23E+4", "12300", "7b"},
		{dec(0, 2), "0.00", "0.00", "00"},
		{dec(128, 0), "128", "128", "0080"},
		{dec(-128, 0), "-128", "-128", "80"},
		{dec(-129, 0), "-129", "-129", "ff7f"},
		{dec(-256, 0), "-256", "-256", "ff00"},
	} {
		if got := tc.d.String(); got != tc.str {
			t.Errorf("%v String() = %q, want %q", tc.d, got, tc.str)
		}
		if got := tc.d.plainString(); got != tc.plain {
			t.Errorf("%v plainString() = %q, want %q", tc.d, got, tc.plain)
		}
		if got := bytesHex(tc.d.bytes()); got != tc.b {
			t.Errorf("%v bytes() = %s, want %s", tc.d, got, tc.b)
		}
	}
	d, ok := parseDecimal("-12.3400")
	if !ok || d.String() != "-12.3400" || d.stripTrailingZeros().String() != "-12.34" {
		t.Errorf("parseDecimal(-12.3400) = %v %v", d, ok)
	}
	if z, _ := parseDecimal("0.000"); z.stripTrailingZeros().String() != "0" {
		t.Errorf("0.000 stripped = %s, want 0", z.stripTrailingZeros())
	}
}

func bytesHex(b []byte) string {
	const hex = "0123456789abcdef"
	var out []byte
	for _, c := range b {
		out = append(out, hex[c>>4], hex[c&15])
	}
	return string(out)
}

func TestConverters(t *testing.T) {
	t.Parallel()
	nested := &structValue{fields: []field{
		{"s", "a\"b\\c\n\x01/<>é"}, {"n", nil}, {"i", int32(7)}, {"l", int64(-3)}, {"d", 1.0},
		{"b", true}, {"bytes", []byte{0xff, 0x00}}, {"list", []any{int32(1), "x", nil}},
		{"dec", decimal{unscaled: big.NewInt(1250), scale: 2}},
	}}
	var j bytes.Buffer
	if err := writeJSON(&j, nested, jsonOptions{}); err != nil {
		t.Fatal(err)
	}
	wantJSON := `{"s":"a\"b\\c\n\u0001/<>é","n":null,"i":7,"l":-3,"d":1.0,"b":true,"bytes":"/wA=","list":[1,"x",null],"dec":"BOI="}`
	if diff := cmp.Diff(wantJSON, j.String()); diff != "" {
		t.Errorf("JsonConverter (-want +got):\n%s", diff)
	}
	withoutBytes := &structValue{fields: append([]field(nil), nested.fields[:6]...)}
	withoutBytes.fields = append(withoutBytes.fields, nested.fields[7:]...)
	s, err := javaString(withoutBytes)
	if err != nil {
		t.Fatal(err)
	}
	wantString := "Struct{s=a\"b\\c\n\x01/<>é,i=7,l=-3,d=1.0,b=true,list=[1, x, null],dec=12.50}"
	if diff := cmp.Diff(wantString, s); diff != "" {
		t.Errorf("StringConverter (-want +got):\n%s", diff)
	}
	if _, err := javaString(nested); err == nil {
		t.Error("StringConverter of a struct with bytes: no error")
	}
	h, err := headerString(nested)
	if err != nil {
		t.Fatal(err)
	}
	wantHeader := `{"s":"a\"b\\c` + "\n\x01" + `/<>é","n":null,"i":7,"l":-3,"d":1.0,"b":true,"bytes":"/wA=","list":[1,"x",null],"dec":12.50}`
	if diff := cmp.Diff(wantHeader, string(h)); diff != "" {
		t.Errorf("SimpleHeaderConverter (-want +got):\n%s", diff)
	}
	for v, want := range map[any]string{true: "true", int16(-2): "-2", 2.5: "2.5", "plain": "plain"} {
		if got, _ := headerString(v); string(got) != want {
			t.Errorf("headerString(%v) = %q, want %q", v, got, want)
		}
	}
	if got, _ := headerString(nil); got != nil {
		t.Errorf("headerString(nil) = %q, want nil", got)
	}
}

func TestExpandJSONPayload(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want    string // want: JsonConverter output, or the input unchanged
		nullAsBytes bool
	}{
		{in: `{"amount": 10, "note": "x", "ok": true}`, want: `{"amount":10,"note":"x","ok":true}`},
		{in: `{"a": 1.50, "b": 3000000000, "c": null, "d": [], "e": {"f": [1, 2]}}`, want: `{"a":1.5,"b":3000000000,"e":{"f":[1,2]}}`},
		{in: `{"c": null}`, want: `{"c":null}`, nullAsBytes: true},
		{in: `{"xs": [{"a": 1}, {"a": 2, "b": "y"}]}`, want: `{"xs":[{"a":1,"b":null},{"a":2,"b":"y"}]}`},
		{in: `{"big": 123456789012345678901234567890}`, want: `"{\"big\": 123456789012345678901234567890}"`},
		{in: `{"mixed": [1, "x"]}`, want: `"{\"mixed\": [1, \"x\"]}"`},
		{in: `{"mixed": [1, 2.5]}`, want: `"{\"mixed\": [1, 2.5]}"`},
		{in: `[1, 2]`, want: `"[1, 2]"`},
		{in: ` {"lead": 1}`, want: `" {\"lead\": 1}"`},
		{in: `not json`, want: `"not json"`},
		{in: `{"dup": 1, "x": 2, "dup": 3}`, want: `{"dup":3,"x":2}`},
	} {
		v := expandJSONPayload(tc.in, tc.nullAsBytes)
		var b bytes.Buffer
		if err := writeJSON(&b, v, jsonOptions{}); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("expand %s = %s, want %s", tc.in, b.String(), tc.want)
		}
	}
	if s, _ := javaString(expandJSONPayload(`{"a": [1, 2], "b": {"c": "d"}}`, false)); s != "Struct{a=[1, 2],b=Struct{c=d}}" {
		t.Errorf("StringConverter of an expanded payload = %s", s)
	}
}
