package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/pkg/card"
)

// cardKeysCmd is `sagabox card-keys`: it keeps the card key file that the
// order and payment services read (CARD_KEYS_FILE). Without -rotate it
// creates the file with one new key when it does not exist and leaves an
// existing one alone (docker compose runs it before those services start;
// `sagabox up` does the same in its data directory). With -rotate it puts a
// new key in front of the others: the key that seals from the services'
// next start on, while the others still open what they sealed. The file
// holds key material: it is written 0600 and never printed.
func cardKeysCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("card-keys", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", filepath.Join(".data", "card-keys"), "the card key file")
	rotate := fs.Bool("rotate", false, "add a new key in front (it seals from the next start on)")
	id := fs.String("id", "", "the new key's id (default k<UTC time>)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *id == "" {
		*id = "k" + time.Now().UTC().Format("20060102T150405")
	}
	if !*rotate {
		created, err := ensureCardKeys(*file, *id)
		if err != nil {
			return err
		}
		if created {
			fmt.Fprintf(stdout, "card-keys: created %s with key %s\n", *file, *id)
		} else {
			fmt.Fprintf(stdout, "card-keys: %s exists; left as it is\n", *file)
		}
		return nil
	}
	ids, err := rotateCardKeys(*file, *id)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "card-keys: %s now holds %s; %s seals once the services restart (payment first, then order)\n",
		*file, strings.Join(ids, ", "), *id)
	return nil
}

// ensureCardKeys creates file with one new key id unless it exists. It
// reports whether it created the file.
func ensureCardKeys(file, id string) (bool, error) {
	if _, err := os.Stat(file); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("card keys %s: %w", file, err)
	}
	entry, err := card.NewKey(id)
	if err != nil {
		return false, err
	}
	return true, writeCardKeys(file, []string{entry})
}

// rotateCardKeys adds a new key id in front of the keys in file and returns
// the key ids, the sealing one first.
func rotateCardKeys(file, id string) ([]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read card keys: %w", err)
	}
	old, err := card.ParseKeys(string(b))
	if err != nil {
		return nil, fmt.Errorf("card keys %s: %w", file, err)
	}
	if slices.Contains(old.IDs(), id) {
		return nil, fmt.Errorf("card keys %s: key %s exists already (choose another with -id)", file, id)
	}
	entry, err := card.NewKey(id)
	if err != nil {
		return nil, err
	}
	var lines []string
	for line := range strings.Lines(string(b)) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			lines = append(lines, line)
		}
	}
	if err := writeCardKeys(file, append([]string{entry}, lines...)); err != nil {
		return nil, err
	}
	return append([]string{id}, old.IDs()...), nil
}

// writeCardKeys replaces file with entries, atomically, readable by its
// owner only.
func writeCardKeys(file string, entries []string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("card keys: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".card-keys-*")
	if err != nil {
		return fmt.Errorf("card keys: %w", err)
	}
	defer os.Remove(tmp.Name())
	content := "# Card keys (" + platform.CardKeysFileEnv + "): id:base64key, one a line; the first seals, all open.\n" +
		strings.Join(entries, "\n") + "\n"
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return fmt.Errorf("write card keys: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write card keys: %w", err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("write card keys: %w", err)
	}
	return nil
}

// withoutCardKeys returns env (KEY=value entries) without the card key
// variables: only the services that seal or open card numbers get them.
func withoutCardKeys(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return k == platform.CardKeysEnv || k == platform.CardKeysFileEnv
	})
}

// cardKeysEnv returns the environment entries that give the order and
// payment services their card keys, and where they come from: the card key
// variables of sagabox up's own environment when set, else the key file in
// the data directory, created with one key on the first start.
func cardKeysEnv(dataDir string, getenv func(string) string) (env []string, from string, err error) {
	for _, k := range []string{platform.CardKeysEnv, platform.CardKeysFileEnv} {
		if v := getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	if len(env) > 0 {
		return env, "(from " + platform.CardKeysEnv + "/" + platform.CardKeysFileEnv + ")", nil
	}
	file, err := filepath.Abs(filepath.Join(dataDir, "card-keys"))
	if err != nil {
		return nil, "", fmt.Errorf("card keys: %w", err)
	}
	if _, err := ensureCardKeys(file, "k1"); err != nil {
		return nil, "", err
	}
	return []string{platform.CardKeysFileEnv + "=" + file}, file, nil
}
