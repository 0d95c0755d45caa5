package testenv

import (
	"testing"

	"github.com/sagabox/sagabox/pkg/card"
)

// CardKeys returns a ring of fresh random card keys with ids (one key "test"
// when none is given), the first sealing: as CARD_KEYS would carry it, and
// parsed.
func CardKeys(t testing.TB, ids ...string) (string, card.Keys) {
	t.Helper()
	if len(ids) == 0 {
		ids = []string{"test"}
	}
	list := ""
	for i, id := range ids {
		k, err := card.NewKey(id)
		if err != nil {
			t.Fatalf("testenv: card key: %v", err)
		}
		if i > 0 {
			list += ","
		}
		list += k
	}
	keys, err := card.ParseKeys(list)
	if err != nil {
		t.Fatalf("testenv: card keys: %v", err)
	}
	return list, keys
}
