package relay

import (
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Java's number formatting, as the converters print numbers.

// decimal is a java.math.BigDecimal: unscaled × 10^-scale.
type decimal struct {
	unscaled *big.Int
	scale    int32
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
