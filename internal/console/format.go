package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"strings"
	"time"
)

// funcs are the templates' helpers. Everything they return is text that
// html/template escapes, except nothing: no helper returns template.HTML.
var funcs = template.FuncMap{
	"lower":  strings.ToLower,
	"clock":  func(t any) string { return asTime(t).Local().Format("15:04:05.000") },
	"when":   func(t any) string { return asTime(t).Local().Format("2006-01-02 15:04:05") },
	"ago":    func(t any) string { return ago(asTime(t)) },
	"cents":  cents,
	"bytes":  byteSize,
	"ms":     func(v float64) string { return fmt.Sprintf("%.1f ms", v) },
	"short":  func(id any) string { s := fmt.Sprint(id); return s[:min(8, len(s))] },
	"card":   func(last4 string) string { return "•••• " + last4 },
	"last4":  func(card string) string { return card[max(0, len(card)-4):] },
	"pretty": pretty,
	"pct":    func(v float64) string { return fmt.Sprintf("%.3f%%", v) },
	"plus":   func(a, b int) int { return a + b },
	"indent": func(depth int) string { return fmt.Sprintf("%dpx", 4+depth*14) },
	// span shortens a Go duration's text: 15m0s → 15m, 1h0m0s → 1h.
	"span": func(d string) string {
		d = strings.TrimSuffix(d, "0s")
		if strings.HasSuffix(d, "h0m") {
			d = strings.TrimSuffix(d, "0m")
		}
		return d
	},
}

// asTime accepts a time or a pointer to one (nil: the zero time).
func asTime(v any) time.Time {
	switch t := v.(type) {
	case time.Time:
		return t
	case *time.Time:
		if t != nil {
			return *t
		}
	}
	return time.Time{}
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	d := time.Since(t)
	switch {
	case d < 0:
		return "in " + (-d).Round(time.Second).String()
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// cents formats an amount of cents as 49.99.
func cents(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// pretty indents a JSON document, with every card number masked.
func pretty(raw json.RawMessage) string {
	var v any
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil {
		return ""
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if enc.Encode(maskCards(v)) != nil {
		return ""
	}
	return strings.TrimSpace(buf.String())
}

// maskCards replaces, in a decoded JSON document, every string under a key
// that names a card by "****" and its last four characters. The services
// mask card numbers already; the console does not rely on it.
func maskCards(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && strings.Contains(strings.ToLower(k), "card") {
				x[k] = "****" + s[max(0, len(s)-4):]
				continue
			}
			x[k] = maskCards(e)
		}
	case []any:
		for i, e := range x {
			x[i] = maskCards(e)
		}
	}
	return v
}

// payloadInt reads an integer field of a saga payload ("order-id").
func payloadInt(raw json.RawMessage, key string) int64 {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return 0
	}
	f, _ := m[key].(float64)
	return int64(f)
}
