// Package card seals card numbers so that they can travel and rest outside
// the payment service without being readable: an AES-256-GCM envelope (Go's
// standard library) that names the key it was sealed with, so that keys can
// rotate while sealed numbers are in flight.
//
// An envelope is one printable string, safe in JSON, SQL and logs:
//
//	v1.<key id>.<base64url, unpadded: 12-byte nonce ‖ ciphertext ‖ 16-byte tag>
//
// The additional authenticated data binds the envelope to its version, its
// key id and a context chosen by the caller (the saga id in this system):
// an envelope copied into another saga's message, or relabelled with
// another key id, does not open.
//
// Keys is a key ring: the first key seals, every key opens. Rotation is
// adding a new key in front, restarting the services that open first,
// then those that seal; the old key stays until nothing sealed with it is
// in flight. A Keys value never prints or logs key material.
package card

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
)

// Version is the envelope format's prefix.
const Version = "v1"

// Limits of what Seal takes and Open reads.
const (
	// MaxNumberLen bounds a card number as given (digits and separators).
	MaxNumberLen = 64
	// MaxEnvelopeLen bounds an envelope; longer input is refused unread.
	MaxEnvelopeLen = 256
	// KeyLen is the AES-256 key length in bytes.
	KeyLen = 32
)

const nonceLen = 12

var (
	// ErrUnreadable reports an envelope that does not open: malformed,
	// sealed with a key the ring does not have, sealed for another context,
	// or tampered with. Retrying cannot help.
	ErrUnreadable = errors.New("sealed card number unreadable")
	// ErrNoKeys reports an empty key ring.
	ErrNoKeys = errors.New("no card key")
)

var (
	keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	b64          = base64.RawURLEncoding.Strict()
)

type key struct {
	id   string
	aead cipher.AEAD
}

// Keys is a key ring. The zero value has no key: it seals and opens nothing.
// Keys values are comparable and cheap to copy; a ring never changes once
// parsed.
type Keys struct {
	ring *ring
}

type ring struct{ keys []key }

func (k Keys) list() []key {
	if k.ring == nil {
		return nil
	}
	return k.ring.keys
}

// ParseKeys reads a key ring: entries "id:base64key" separated by commas or
// new lines, the first one sealing. A key is 32 bytes in standard base64
// (`openssl rand -base64 32`); an id is 1 to 32 letters, digits, '-' or '_'.
// Blank entries and lines starting with '#' are skipped. Every problem is
// reported at once; no error quotes key material.
func ParseKeys(list string) (Keys, error) {
	var (
		keys []key
		errs []error
	)
	seen := map[string]bool{}
	for n, entry := range splitEntries(list) {
		id, raw, ok := strings.Cut(entry, ":")
		id, raw = strings.TrimSpace(id), strings.TrimSpace(raw)
		if !ok || !keyIDPattern.MatchString(id) {
			errs = append(errs, fmt.Errorf("entry %d: want id:base64key with an id of 1 to 32 letters, digits, - or _", n+1))
			continue
		}
		if seen[id] {
			errs = append(errs, fmt.Errorf("key %s: listed twice", id))
			continue
		}
		seen[id] = true
		secret, err := base64.StdEncoding.DecodeString(raw)
		if err != nil || len(secret) != KeyLen {
			errs = append(errs, fmt.Errorf("key %s: want %d bytes in standard base64", id, KeyLen))
			continue
		}
		aead, err := newAEAD(secret)
		if err != nil {
			errs = append(errs, fmt.Errorf("key %s: %w", id, err))
			continue
		}
		keys = append(keys, key{id: id, aead: aead})
	}
	if err := errors.Join(errs...); err != nil {
		return Keys{}, err
	}
	return newKeys(keys), nil
}

func newKeys(keys []key) Keys {
	if len(keys) == 0 {
		return Keys{}
	}
	return Keys{ring: &ring{keys: keys}}
}

func splitEntries(list string) []string {
	var out []string
	for line := range strings.Lines(list) {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for e := range strings.SplitSeq(line, ",") {
			if e = strings.TrimSpace(e); e != "" {
				out = append(out, e)
			}
		}
	}
	return out
}

func newAEAD(secret []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(secret)
	if err != nil {
		return nil, fmt.Errorf("aes key: %w", err)
	}
	return cipher.NewGCM(block)
}

// NewKey returns a fresh random key entry "id:base64key" for ParseKeys.
func NewKey(id string) (string, error) {
	if !keyIDPattern.MatchString(id) {
		return "", fmt.Errorf("key id %q: want 1 to 32 letters, digits, - or _", id)
	}
	secret := make([]byte, KeyLen)
	if _, err := rand.Read(secret); err != nil {
		return "", fmt.Errorf("generate card key: %w", err)
	}
	return id + ":" + base64.StdEncoding.EncodeToString(secret), nil
}

// Join returns the ring with the keys of k first, then those of other (an
// id in both is an error).
func (k Keys) Join(other Keys) (Keys, error) {
	all := append(append([]key(nil), k.list()...), other.list()...)
	seen := map[string]bool{}
	for _, e := range all {
		if seen[e.id] {
			return Keys{}, fmt.Errorf("key %s: listed twice", e.id)
		}
		seen[e.id] = true
	}
	return newKeys(all), nil
}

// Empty reports a ring without keys.
func (k Keys) Empty() bool { return len(k.list()) == 0 }

// IDs returns the key ids, the sealing one first.
func (k Keys) IDs() []string {
	ids := make([]string, len(k.list()))
	for i, e := range k.list() {
		ids[i] = e.id
	}
	return ids
}

// String names the keys, never their material.
func (k Keys) String() string { return "card.Keys" + fmt.Sprint(k.IDs()) }

// GoString is String: %#v must not print key material either.
func (k Keys) GoString() string { return k.String() }

// LogValue logs the key ids only.
func (k Keys) LogValue() slog.Value { return slog.AnyValue(k.IDs()) }

// Seal seals number with the first key for context (which Open must be
// given again). number is stored as given; it must be 1 to MaxNumberLen
// bytes.
func (k Keys) Seal(number string, context []byte) (string, error) {
	if k.Empty() {
		return "", ErrNoKeys
	}
	if number == "" || len(number) > MaxNumberLen {
		return "", fmt.Errorf("seal card number: want 1 to %d characters", MaxNumberLen)
	}
	e := k.list()[0]
	nonce := make([]byte, nonceLen, nonceLen+len(number)+e.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal card number: nonce: %w", err)
	}
	sealed := e.aead.Seal(nonce, nonce, []byte(number), aad(e.id, context))
	return Version + "." + e.id + "." + b64.EncodeToString(sealed), nil
}

// Open returns the card number sealed in envelope for context. Every
// failure wraps ErrUnreadable and never quotes the envelope.
func (k Keys) Open(envelope string, context []byte) (string, error) {
	id, body, err := split(envelope)
	if err != nil {
		return "", err
	}
	var aead cipher.AEAD
	for _, e := range k.list() {
		if e.id == id {
			aead = e.aead
		}
	}
	if aead == nil {
		return "", fmt.Errorf("%w: sealed with key %q, which is not configured (keys %v)", ErrUnreadable, id, k.IDs())
	}
	raw, err := b64.DecodeString(body)
	if err != nil || len(raw) < nonceLen+aead.Overhead() {
		return "", fmt.Errorf("%w: malformed ciphertext", ErrUnreadable)
	}
	plain, err := aead.Open(nil, raw[:nonceLen], raw[nonceLen:], aad(id, context))
	if err != nil {
		return "", fmt.Errorf("%w: key %s does not authenticate it (another key's, another context's, or tampered with)", ErrUnreadable, id)
	}
	return string(plain), nil
}

// KeyID returns the id of the key envelope names, if it is an envelope.
func KeyID(envelope string) (string, bool) {
	id, _, err := split(envelope)
	return id, err == nil
}

func split(envelope string) (id, body string, err error) {
	if len(envelope) > MaxEnvelopeLen {
		return "", "", fmt.Errorf("%w: longer than %d characters", ErrUnreadable, MaxEnvelopeLen)
	}
	parts := strings.Split(envelope, ".")
	if len(parts) != 3 || parts[0] != Version || !keyIDPattern.MatchString(parts[1]) {
		return "", "", fmt.Errorf("%w: not a %s envelope", ErrUnreadable, Version)
	}
	return parts[1], parts[2], nil
}

func aad(id string, context []byte) []byte {
	return append([]byte("sagabox card "+Version+"."+id+"."), context...)
}

// Last4 returns the last four characters of number other than spaces and
// dashes (fewer if it has fewer): what may be stored and shown.
func Last4(number string) string {
	digits := strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, number)
	if r := []rune(digits); len(r) > 4 {
		return string(r[len(r)-4:])
	}
	return digits
}
