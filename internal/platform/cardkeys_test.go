package platform

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoadCardKeys(t *testing.T) {
	t.Parallel()
	const (
		k1 = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
		k2 = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
	)
	dir := t.TempDir()
	file := filepath.Join(dir, "card-keys")
	if err := os.WriteFile(file, []byte("# card keys\n"+k1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	for name, tc := range map[string]struct {
		env  map[string]string
		want []string // key ids, sealing first
	}{
		"variable":                  {map[string]string{"CARD_KEYS": k2 + "," + k1}, []string{"k2", "k1"}},
		"file":                      {map[string]string{"CARD_KEYS_FILE": file}, []string{"k1"}},
		"variable first, then file": {map[string]string{"CARD_KEYS": k2, "CARD_KEYS_FILE": file}, []string{"k2", "k1"}},
	} {
		keys, err := LoadCardKeys(env(tc.env))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if diff := cmp.Diff(tc.want, keys.IDs()); diff != "" {
			t.Errorf("%s: ids (-want +got):\n%s", name, diff)
		}
	}

	for name, tc := range map[string]struct {
		env  map[string]string
		want []string // every problem, at once
	}{
		"nothing set":       {nil, []string{"no card key: set CARD_KEYS or CARD_KEYS_FILE"}},
		"empty file":        {map[string]string{"CARD_KEYS_FILE": empty}, []string{"no card key"}},
		"missing file":      {map[string]string{"CARD_KEYS_FILE": filepath.Join(dir, "nope")}, []string{"CARD_KEYS_FILE=" + dir + "/nope: read card keys"}},
		"bad key and file":  {map[string]string{"CARD_KEYS": "k1:short", "CARD_KEYS_FILE": filepath.Join(dir, "nope")}, []string{"CARD_KEYS: key k1: want 32 bytes", "CARD_KEYS_FILE="}},
		"id in both places": {map[string]string{"CARD_KEYS": k1, "CARD_KEYS_FILE": file}, []string{"CARD_KEYS and CARD_KEYS_FILE: key k1: listed twice"}},
	} {
		_, err := LoadCardKeys(env(tc.env))
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", name, err, w)
			}
		}
		if strings.Contains(err.Error(), "AAECAwQF") {
			t.Errorf("%s: error quotes key material: %v", name, err)
		}
	}
}
