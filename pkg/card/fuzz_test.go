package card_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sagabox/sagabox/pkg/card"
)

// FuzzOpen feeds arbitrary envelopes to Open and arbitrary numbers and
// contexts through Seal and Open. Open never panics and fails only with
// ErrUnreadable; an envelope it opens is canonical (nothing in it can be
// changed and still open); a sealed number opens to itself for its own
// context only.
func FuzzOpen(f *testing.F) {
	k := mustKeys(f, key1+","+key2)
	for _, n := range []string{"4111-1111-1111-1111", "xxxx-yyyy-dddd-aaaa", "5500000000000004", "1"} {
		env, err := k.Seal(n, sagaID)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(env, n, sagaID, uint16(7))
		f.Add(env[:len(env)-1], n, []byte{}, uint16(0))
		f.Add("v1.k9."+strings.SplitN(env, ".", 3)[2], n, sagaID, uint16(3))
	}
	for _, bad := range []string{"", "v1.k1.AAAA", "v2.k1.AAAA", "v1..", "v1.k1", "4111111111111111", "v1.k1.+/", "v1.k1.AAAA.x",
		"v1.k1." + strings.Repeat("A", card.MaxEnvelopeLen)} {
		f.Add(bad, "", []byte(nil), uint16(1))
	}
	f.Fuzz(func(t *testing.T, envelope, number string, context []byte, flip uint16) {
		got, err := k.Open(envelope, context)
		if err != nil {
			if !errors.Is(err, card.ErrUnreadable) || got != "" {
				t.Fatalf("Open failed with %v (returned %q), want ErrUnreadable and nothing", err, got)
			}
		} else {
			// Canonical: any other byte at any position does not open.
			i := int(flip) % len(envelope)
			for _, c := range []byte{'A', 'B', '_', '-', '.', '0'} {
				if c == envelope[i] {
					continue
				}
				bad := envelope[:i] + string(c) + envelope[i+1:]
				if _, err := k.Open(bad, context); err == nil {
					t.Fatalf("%q opens and so does %q", envelope, bad)
				}
			}
		}

		sealed, err := k.Seal(number, context)
		if number == "" || len(number) > card.MaxNumberLen {
			if err == nil {
				t.Fatalf("Seal of %d bytes succeeded", len(number))
			}
			return
		}
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if len(sealed) > card.MaxEnvelopeLen {
			t.Fatalf("envelope of %d bytes exceeds MaxEnvelopeLen", len(sealed))
		}
		if len(number) >= 6 && strings.Contains(sealed, number) {
			t.Fatalf("envelope %q shows the number", sealed)
		}
		if opened, err := k.Open(sealed, context); err != nil || opened != number {
			t.Fatalf("Open(Seal(%q)) = %q, %v", number, opened, err)
		}
		if _, err := k.Open(sealed, append([]byte("x"), context...)); err == nil {
			t.Fatal("opened for another context")
		}
	})
}
