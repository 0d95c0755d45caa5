package platform

import (
	"errors"
	"fmt"
	"os"

	"github.com/sagabox/sagabox/pkg/card"
)

// The variables that carry card keys. Only the order service (which seals)
// and the payment service (which opens) are given them.
const (
	// CardKeysEnv holds the key ring itself: "id:base64key" entries,
	// comma-separated, the first one sealing (see card.ParseKeys).
	CardKeysEnv = "CARD_KEYS"
	// CardKeysFileEnv names a file holding entries in the same format, one
	// per line; its keys come after those of CARD_KEYS.
	CardKeysFileEnv = "CARD_KEYS_FILE"
)

// LoadCardKeys reads the card key ring from CARD_KEYS and/or the file named
// by CARD_KEYS_FILE through getenv, and reports every problem at once. At
// least one key is required. Errors never quote key material.
func LoadCardKeys(getenv func(string) string) (card.Keys, error) {
	var (
		keys card.Keys
		errs []error
	)
	if v := getenv(CardKeysEnv); v != "" {
		k, err := card.ParseKeys(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", CardKeysEnv, err))
		}
		keys = k
	}
	if path := getenv(CardKeysFileEnv); path != "" {
		k, err := readCardKeys(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%s: %w", CardKeysFileEnv, path, err))
		} else if keys, err = keys.Join(k); err != nil {
			errs = append(errs, fmt.Errorf("%s and %s: %w", CardKeysEnv, CardKeysFileEnv, err))
		}
	}
	if len(errs) == 0 && keys.Empty() {
		errs = append(errs, fmt.Errorf("no card key: set %s or %s (make run generates <data>/card-keys)", CardKeysEnv, CardKeysFileEnv))
	}
	if err := errors.Join(errs...); err != nil {
		return card.Keys{}, err
	}
	return keys, nil
}

func readCardKeys(path string) (card.Keys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return card.Keys{}, fmt.Errorf("read card keys: %w", err)
	}
	return card.ParseKeys(string(b))
}
