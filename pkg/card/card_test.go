package card_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sagabox/sagabox/pkg/card"
)

// Fixed test keys (32 bytes each, standard base64).
const (
	key1 = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	key2 = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
)

var sagaID = []byte("181fbb66-2e7b-4a4b-9a0e-5d0c4f0e2a11")

func mustKeys(t testing.TB, list string) card.Keys {
	t.Helper()
	k, err := card.ParseKeys(list)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	k := mustKeys(t, key1)
	env, err := k.Seal("4111-1111-1111-1111", sagaID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(env, "v1.k1.") || strings.Contains(env, "4111") {
		t.Errorf("envelope %q: want v1.k1.<ciphertext>", env)
	}
	again, _ := k.Seal("4111-1111-1111-1111", sagaID)
	if again == env {
		t.Error("two seals of one number are equal: the nonce is not random")
	}
	got, err := k.Open(env, sagaID)
	if err != nil || got != "4111-1111-1111-1111" {
		t.Errorf("Open = %q, %v", got, err)
	}
	if id, ok := card.KeyID(env); !ok || id != "k1" {
		t.Errorf("KeyID = %q, %v", id, ok)
	}
}

// A second key in front seals new numbers; numbers sealed with the old key
// still open as long as it is in the ring, and not once it is gone.
func TestRotation(t *testing.T) {
	t.Parallel()
	old := mustKeys(t, key1)
	sealedOld, err := old.Seal("5500000000000004", sagaID)
	if err != nil {
		t.Fatal(err)
	}
	rotated := mustKeys(t, key2+","+key1)
	sealedNew, err := rotated.Seal("5500000000000004", sagaID)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := card.KeyID(sealedNew); id != "k2" {
		t.Errorf("new numbers sealed with %s, want k2", id)
	}
	for _, env := range []string{sealedOld, sealedNew} {
		if got, err := rotated.Open(env, sagaID); err != nil || got != "5500000000000004" {
			t.Errorf("rotated ring opens %.8s…: %q, %v", env, got, err)
		}
	}
	if _, err := old.Open(sealedNew, sagaID); !errors.Is(err, card.ErrUnreadable) || !strings.Contains(err.Error(), `"k2"`) {
		t.Errorf("old ring opening a k2 envelope: %v, want ErrUnreadable naming k2", err)
	}
	retired := mustKeys(t, key2)
	if _, err := retired.Open(sealedOld, sagaID); !errors.Is(err, card.ErrUnreadable) {
		t.Errorf("ring without k1 opening a k1 envelope: %v", err)
	}
}

func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	k := mustKeys(t, key1+","+key2)
	env, err := k.Seal("4111111111111111", sagaID)
	if err != nil {
		t.Fatal(err)
	}
	// Key 1 under the id k2: same format, other key.
	swapped := mustKeys(t, strings.Replace(key1, "k1:", "k2:", 1)+","+strings.Replace(key2, "k2:", "k1:", 1))
	body := strings.TrimPrefix(env, "v1.k1.")
	for name, tc := range map[string]struct {
		keys     card.Keys
		envelope string
		context  []byte
	}{
		"another context (saga)": {k, env, []byte("another saga")},
		"relabelled key id":      {k, "v1.k2." + body, sagaID},
		"another key, same id":   {swapped, env, sagaID},
		"unknown key":            {k, "v1.k9." + body, sagaID},
		"no keys":                {card.Keys{}, env, sagaID},
		"other version":          {k, "v2.k1." + body, sagaID},
		"truncated":              {k, env[:len(env)-1], sagaID},
		"too short":              {k, "v1.k1.AAAA", sagaID},
		"not base64url":          {k, "v1.k1." + body[:10] + "+/" + body[12:], sagaID},
		"extra part":             {k, env + ".x", sagaID},
		"empty":                  {k, "", sagaID},
		"plain card number":      {k, "4111111111111111", sagaID},
		"too long":               {k, env + strings.Repeat("A", card.MaxEnvelopeLen), sagaID},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.keys.Open(tc.envelope, tc.context)
			if !errors.Is(err, card.ErrUnreadable) || got != "" {
				t.Fatalf("Open = %q, %v; want ErrUnreadable", got, err)
			}
			if strings.Contains(err.Error(), body[:16]) {
				t.Errorf("error quotes the ciphertext: %v", err)
			}
		})
	}
	// Every single-byte change of the envelope is refused.
	for i := range len(env) {
		for _, c := range []byte("Av1.-_9") {
			if env[i] == c {
				continue
			}
			bad := env[:i] + string(c) + env[i+1:]
			if got, err := k.Open(bad, sagaID); err == nil {
				t.Errorf("tampered at %d (%q): opened to %q", i, c, got)
			}
		}
	}
}

func TestSealRefuses(t *testing.T) {
	t.Parallel()
	if _, err := (card.Keys{}).Seal("4111", sagaID); !errors.Is(err, card.ErrNoKeys) {
		t.Errorf("empty ring: %v", err)
	}
	k := mustKeys(t, key1)
	for _, n := range []string{"", strings.Repeat("1", card.MaxNumberLen+1)} {
		if _, err := k.Seal(n, sagaID); err == nil {
			t.Errorf("Seal(%d characters) = nil error", len(n))
		}
	}
}

func TestParseKeys(t *testing.T) {
	t.Parallel()
	k := mustKeys(t, "# rotated 2025-01-02\n"+key2+"\n\n "+key1+" ,\n")
	if diff := cmp.Diff([]string{"k2", "k1"}, k.IDs()); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
	secret := strings.SplitN(key1, ":", 2)[1]
	for name, tc := range map[string]struct{ list, want string }{
		"empty id":        {":" + secret, "entry 1: want id:base64key"},
		"bad id":          {"k.1:" + secret, "entry 1"},
		"no colon":        {secret, "entry 1"},
		"short key":       {"k1:AAEC", "key k1: want 32 bytes"},
		"not base64":      {"k1:" + strings.Repeat("*", 44), "key k1: want 32 bytes"},
		"url base64":      {"k1:" + strings.Repeat("_", 42) + "8=", "key k1: want 32 bytes"}, // 32 bytes 0xff in base64url
		"duplicate id":    {key1 + "," + strings.Replace(key2, "k2", "k1", 1), "key k1: listed twice"},
		"every problem":   {"x:1,y:2", "key x: want 32 bytes"},
		"second of three": {key1 + ",nope," + key2, "entry 2"},
	} {
		_, err := card.ParseKeys(tc.list)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to say %q", name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), secret[:12]) {
			t.Errorf("%s: error quotes key material: %v", name, err)
		}
	}
	if _, err := card.ParseKeys("x:1,y:2"); err == nil || !strings.Contains(err.Error(), "key y") {
		t.Errorf("every problem at once: %v", err)
	}
}

func TestKeysNeverPrintTheirMaterial(t *testing.T) {
	t.Parallel()
	k := mustKeys(t, key1+","+key2)
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("keys", "keys", k)
	for _, out := range []string{
		fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k), logged.String(),
		fmt.Sprintf("%+v", struct{ K card.Keys }{k}),
	} {
		if !strings.Contains(out, "k1") {
			t.Errorf("output %q does not name the keys", out)
		}
		for _, secret := range []string{key1[3:15], key2[3:15], "AAECAwQF", "\x00\x01\x02\x03"} {
			if strings.Contains(out, secret) {
				t.Errorf("output %q shows key material", out)
			}
		}
	}
}

func TestNewKey(t *testing.T) {
	t.Parallel()
	a, err := card.NewKey("2025-01")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := card.NewKey("2025-02")
	k := mustKeys(t, a+","+b)
	if diff := cmp.Diff([]string{"2025-01", "2025-02"}, k.IDs()); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
	if a[8:] == b[8:] {
		t.Error("two new keys are equal")
	}
	if _, err := card.NewKey("no.dots"); err == nil {
		t.Error("NewKey accepted an id with a dot")
	}
}

func TestLast4(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"4111-1111-1111-1234": "1234", "4111 1111 1111 123 4": "1234", "xxxx-yyyy-dddd-aaaa": "aaaa",
		"12-3": "123", "": "", "ab-cd-": "abcd", "1234567890ünö": "0ünö",
	} {
		if got := card.Last4(in); got != want {
			t.Errorf("Last4(%q) = %q, want %q", in, got, want)
		}
	}
}
