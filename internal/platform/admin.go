package platform

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
)

// MinAdminTokenLen is the shortest admin token ParseAdminTokens accepts.
const MinAdminTokenLen = 16

// AdminTokens are the bearer tokens that open a service's /admin API, each
// with the name operator actions are recorded under. A token is an
// operator's (ADMIN_TOKEN: reads and acts) or a reader's (ADMIN_READ_TOKEN:
// reads only, such as the console's). Only SHA-256 sums of the tokens are
// kept, and the value prints and logs as the names alone. The zero value
// holds no token: every admin request is refused.
type AdminTokens struct {
	tokens []adminToken
}

type adminToken struct {
	name     string
	sum      [sha256.Size]byte
	readOnly bool
}

// ParseAdminTokens reads ADMIN_TOKEN: a comma-separated list of name:token
// pairs; a bare token (no colon) is named "admin". Every problem is
// reported at once, naming the entry by position and never quoting a
// token: an empty entry, an invalid name (letters, digits and ._@- only), a
// token shorter than MinAdminTokenLen or containing white space, a name or
// token given twice.
func ParseAdminTokens(v string) (AdminTokens, error) {
	return ParseTokens(v, "")
}

// ParseTokens reads the operators' tokens (ADMIN_TOKEN) and the readers'
// (ADMIN_READ_TOKEN: same syntax, a bare token named "reader"; empty for
// none) as ParseAdminTokens does. A name or token may appear in only one of
// them, once.
func ParseTokens(operators, readers string) (AdminTokens, error) {
	var (
		t     AdminTokens
		errs  []error
		names = map[string]bool{}
		sums  = map[[sha256.Size]byte]bool{}
	)
	parse := func(v, list, bare string, readOnly bool) {
		for i, entry := range strings.Split(v, ",") {
			if err := t.add(entry, bare, readOnly, names, sums); err != nil {
				errs = append(errs, fmt.Errorf("%s entry %d%w", list, i+1, err))
			}
		}
	}
	if operators != "" || readers == "" {
		parse(operators, "ADMIN_TOKEN", "admin", false)
	}
	if readers != "" {
		parse(readers, "ADMIN_READ_TOKEN", "reader", true)
	}
	if err := errors.Join(errs...); err != nil {
		return AdminTokens{}, err
	}
	return t, nil
}

// add parses one name:token entry (a bare token is named bare) into t; its
// error starts with what follows "entry N".
func (t *AdminTokens) add(entry, bare string, readOnly bool, names map[string]bool, sums map[[sha256.Size]byte]bool) error {
	entry = strings.TrimSpace(entry)
	name, token, ok := strings.Cut(entry, ":")
	if !ok {
		name, token = bare, entry
	}
	switch {
	case entry == "":
		return errors.New(" is empty")
	case !validAdminName(name):
		return errors.New(": name must be 1-64 letters, digits or ._@-")
	case len(token) < MinAdminTokenLen:
		return fmt.Errorf(" (%s): token shorter than %d characters", name, MinAdminTokenLen)
	case strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' }):
		return fmt.Errorf(" (%s): token contains white space or control characters", name)
	}
	sum := sha256.Sum256([]byte(token))
	var errs []error
	if names[name] {
		errs = append(errs, fmt.Errorf(": name %s given twice", name))
	}
	if sums[sum] {
		errs = append(errs, fmt.Errorf(" (%s): same token as an earlier entry", name))
	}
	names[name], sums[sum] = true, true
	t.tokens = append(t.tokens, adminToken{name: name, sum: sum, readOnly: readOnly})
	return errors.Join(errs...)
}

// validAdminName reports a name of 1-64 letters, digits or ._@- characters.
func validAdminName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._@-", r)
		if !ok {
			return false
		}
	}
	return true
}

// Names returns the token names, in configuration order; a reader's name
// ends in "(read)".
func (t AdminTokens) Names() []string {
	names := make([]string, len(t.tokens))
	for i, tok := range t.tokens {
		names[i] = tok.name
		if tok.readOnly {
			names[i] += " (read)"
		}
	}
	return names
}

// Equal reports whether t and o hold the same names and tokens in the same
// order (go-cmp uses it).
func (t AdminTokens) Equal(o AdminTokens) bool {
	return slices.Equal(t.tokens, o.tokens)
}

// String returns the token names: tokens never print.
func (t AdminTokens) String() string { return "[" + strings.Join(t.Names(), " ") + "]" }

// LogValue logs the token names only.
func (t AdminTokens) LogValue() slog.Value { return slog.AnyValue(t.Names()) }

// lookup returns the token whose secret is token. It compares the token's
// SHA-256 sum with every configured sum in constant time, always all of
// them, so that neither the time taken nor the sums' lengths tell anything
// about the tokens.
func (t AdminTokens) lookup(token string) (adminToken, bool) {
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i, tok := range t.tokens {
		if subtle.ConstantTimeCompare(sum[:], tok.sum[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return adminToken{}, false
	}
	return t.tokens[found], true
}

type adminKey struct{}

// AdminName returns the name of the admin token that authorised the request
// of ctx (see RequireAdmin), "" if none.
func AdminName(ctx context.Context) string {
	name, _ := ctx.Value(adminKey{}).(string)
	return name
}

// RequireAdmin guards an admin API: a request passes only with the header
// "Authorization: Bearer <token>" holding one of tokens, and its context
// then carries the token's name (AdminName). Any other request gets 401
// {"error": …} with a WWW-Authenticate challenge and never reaches next, so
// it changes nothing; a reader's token opens GET and HEAD only, anything
// else with it gets 403. Refusals are logged without the token.
func RequireAdmin(tokens AdminTokens, log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			var (
				tok adminToken
				ok  bool
			)
			if strings.EqualFold(scheme, "Bearer") && token != "" {
				tok, ok = tokens.lookup(strings.TrimSpace(token))
			}
			if !ok {
				log.WarnContext(r.Context(), "admin request refused: missing or invalid bearer token",
					"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
				w.Header().Set("WWW-Authenticate", `Bearer realm="admin"`)
				WriteError(w, http.StatusUnauthorized, "missing or invalid bearer token")
				return
			}
			if tok.readOnly && r.Method != http.MethodGet && r.Method != http.MethodHead {
				log.WarnContext(r.Context(), "admin request refused: a reader's token cannot act",
					"method", r.Method, "path", r.URL.Path, "token", tok.name, "remote", r.RemoteAddr)
				WriteError(w, http.StatusForbidden, "the token "+tok.name+" only reads: an action needs an operator's token")
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), adminKey{}, tok.name)))
		})
	}
}
