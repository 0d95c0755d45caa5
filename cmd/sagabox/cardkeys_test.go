package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sagabox/sagabox/internal/platform"
)

// loadKeyIDs reads file as the services do (CARD_KEYS_FILE).
func loadKeyIDs(t *testing.T, file string) []string {
	t.Helper()
	keys, err := platform.LoadCardKeys(func(k string) string {
		if k == platform.CardKeysFileEnv {
			return file
		}
		return ""
	})
	if err != nil {
		t.Fatalf("load %s: %v", file, err)
	}
	return keys.IDs()
}

func TestCardKeysCommand(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "data", "card-keys")
	var out bytes.Buffer
	if err := run(t.Context(), []string{"card-keys", "-file", file, "-id", "first"}, nil, &out, &out); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v (%v): want mode 0600", fi, err)
	}
	before, _ := os.ReadFile(file)
	// Again: left alone.
	if err := run(t.Context(), []string{"card-keys", "-file", file}, nil, &out, &out); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(file); !bytes.Equal(before, after) {
		t.Error("a second card-keys without -rotate changed the file")
	}
	if diff := cmp.Diff([]string{"first"}, loadKeyIDs(t, file)); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	// Rotate: a new key in front, the old one kept.
	if err := run(t.Context(), []string{"card-keys", "-file", file, "-rotate", "-id", "second"}, nil, &out, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"second", "first"}, loadKeyIDs(t, file)); diff != "" {
		t.Errorf("keys after rotating (-want +got):\n%s", diff)
	}
	if after, _ := os.ReadFile(file); !strings.Contains(string(after), strings.TrimSpace(lastLine(before))) {
		t.Error("rotating changed the old key")
	}
	if err := run(t.Context(), []string{"card-keys", "-file", file, "-rotate", "-id", "first"}, nil, &out, &out); err == nil {
		t.Error("rotating to an existing id succeeded")
	}
	if err := run(t.Context(), []string{"card-keys", "-file", filepath.Join(t.TempDir(), "none"), "-rotate"}, nil, &out, &out); err == nil {
		t.Error("rotating a missing file succeeded")
	}
	// What it printed names files and ids, never key material.
	if secret := strings.SplitN(lastLine(before), ":", 2)[1][:16]; strings.Contains(out.String(), secret) {
		t.Errorf("card-keys printed key material:\n%s", out.String())
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// sagabox up gives the card keys to the order and payment services only:
// its own CARD_KEYS/CARD_KEYS_FILE when set, else the file it creates in
// the data directory; no other child inherits them.
func TestCardKeysEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env, from, err := cardKeysEnv(dir, func(string) string { return "" })
	file := filepath.Join(dir, "card-keys")
	if err != nil || !cmp.Equal(env, []string{"CARD_KEYS_FILE=" + file}) || from != file {
		t.Fatalf("cardKeysEnv = %v, %q, %v; want the data directory's file", env, from, err)
	}
	if diff := cmp.Diff([]string{"k1"}, loadKeyIDs(t, file)); diff != "" {
		t.Errorf("generated keys (-want +got):\n%s", diff)
	}
	given := map[string]string{"CARD_KEYS": "a:b", "CARD_KEYS_FILE": "/etc/keys"}
	env, _, err = cardKeysEnv(filepath.Join(dir, "other"), func(k string) string { return given[k] })
	if err != nil || !cmp.Equal(env, []string{"CARD_KEYS=a:b", "CARD_KEYS_FILE=/etc/keys"}) {
		t.Errorf("cardKeysEnv with the variables set = %v, %v", env, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "other")); err == nil {
		t.Error("a key file was created although the variables were set")
	}
	got := withoutCardKeys([]string{"PATH=/bin", "CARD_KEYS=a:b", "CARD_KEYS_FILE=/x", "CARD_KEYS_X=1"})
	if diff := cmp.Diff([]string{"PATH=/bin", "CARD_KEYS_X=1"}, got); diff != "" {
		t.Errorf("withoutCardKeys (-want +got):\n%s", diff)
	}
}
