package app

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sagabox/sagabox/pkg/card"
	"github.com/sagabox/sagabox/pkg/saga"
)

// Settings are the order service's own settings, beyond platform.Config:
// the order-placement saga's deadline policy, the sweeper and the bound
// after which an aborting saga counts as stuck.
type Settings struct {
	// StepTimeout is a step's wait for a reply (SAGA_STEP_TIMEOUT), unless
	// StepTimeouts has its own: SAGA_<STEP>_TIMEOUT, the step's name in
	// capitals with '_' for '-' (SAGA_CREDIT_APPROVAL_TIMEOUT,
	// SAGA_PAYMENT_TIMEOUT), read for every step of Definitions.
	StepTimeout  time.Duration
	StepTimeouts map[string]time.Duration
	// Retries is how often a request that timed out is sent again before
	// its step is abandoned and the saga aborts (SAGA_RETRIES).
	Retries int
	// MaxTimeout caps the wait, which doubles with every re-send of a
	// request or compensation (SAGA_MAX_TIMEOUT).
	MaxTimeout time.Duration
	// StuckAfter is how long a saga may stay ABORTING before the admin API
	// lists it as stuck (SAGA_STUCK_AFTER).
	StuckAfter time.Duration
	// SweepInterval is how often the deadline sweeper looks for sagas past
	// their deadline (SAGA_SWEEP_INTERVAL).
	SweepInterval time.Duration
	// EarlyReplyWait bounds how long a reply ahead of its saga's state (the
	// saga, or the message it answers, not visible yet: see
	// saga.ErrEarlyReply) is waited for before it is parked
	// (SAGA_EARLY_REPLY_WAIT). Its partition waits meanwhile; the state is
	// normally visible within milliseconds.
	EarlyReplyWait time.Duration
	// IdempotencyKeyTTL is how long the idempotency key of a placed order
	// is kept: a request retried with it within that time gets the first
	// order back (IDEMPOTENCY_KEY_TTL).
	IdempotencyKeyTTL time.Duration
	// Definitions returns the sagas the service runs, every version of each
	// type it holds, for these settings; nil: Definitions.
	Definitions func(Settings) []saga.Definition
	// CardKeys seal the card numbers of new orders (the first key) for the
	// payment service (CARD_KEYS, CARD_KEYS_FILE: read by the service's
	// Settings hook with platform.LoadCardKeys). Required.
	CardKeys card.Keys
}

// DefaultSettings are 30 s per step, 3 retries, waits doubling up to 5 min,
// stuck after 15 min of ABORTING, a sweep every second, early replies
// waited for 30 s, idempotency keys kept 24 h; no card key.
func DefaultSettings() Settings {
	return Settings{
		StepTimeout:       30 * time.Second,
		Retries:           3,
		MaxTimeout:        5 * time.Minute,
		StuckAfter:        15 * time.Minute,
		SweepInterval:     time.Second,
		IdempotencyKeyTTL: 24 * time.Hour,
		EarlyReplyWait:    30 * time.Second,
	}
}

// LoadSettings reads the settings through getenv, falling back to
// DefaultSettings for unset variables, and reports every invalid value at
// once.
func LoadSettings(getenv func(string) string) (Settings, error) {
	s := DefaultSettings()
	var errs []error
	duration := func(key string, dst *time.Duration) {
		v := getenv(key)
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a positive duration like 30s", key, v))
			return
		}
		*dst = d
	}
	duration("SAGA_STEP_TIMEOUT", &s.StepTimeout)
	for _, d := range Definitions(DefaultSettings()) {
		for _, st := range d.Steps {
			var t time.Duration
			duration(StepTimeoutEnv(st.Name), &t)
			if t > 0 {
				if s.StepTimeouts == nil {
					s.StepTimeouts = map[string]time.Duration{}
				}
				s.StepTimeouts[st.Name] = t
			}
		}
	}
	duration("SAGA_MAX_TIMEOUT", &s.MaxTimeout)
	duration("SAGA_STUCK_AFTER", &s.StuckAfter)
	duration("SAGA_SWEEP_INTERVAL", &s.SweepInterval)
	duration("IDEMPOTENCY_KEY_TTL", &s.IdempotencyKeyTTL)
	duration("SAGA_EARLY_REPLY_WAIT", &s.EarlyReplyWait)
	if v := getenv("SAGA_RETRIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 100 {
			errs = append(errs, fmt.Errorf("SAGA_RETRIES=%q: want a whole number from 0 to 100", v))
		} else {
			s.Retries = n
		}
	}
	return s, errors.Join(errs...)
}

// StepTimeoutEnv is the variable of step's own timeout:
// "credit-approval" → SAGA_CREDIT_APPROVAL_TIMEOUT.
func StepTimeoutEnv(step string) string {
	return "SAGA_" + strings.ToUpper(strings.ReplaceAll(step, "-", "_")) + "_TIMEOUT"
}

// Timeout is step's wait for a reply.
func (s Settings) Timeout(step string) time.Duration {
	if t, ok := s.StepTimeouts[step]; ok {
		return t
	}
	return s.StepTimeout
}

// WithDeadlines gives every step of d the deadline policy of s: it waits
// its Timeout for a reply, a request is sent again s.Retries times (the
// participants answer a repeated request with the first answer), then the
// step is abandoned and the saga compensates — the abandoned step
// included, since it may have taken effect.
func (s Settings) WithDeadlines(d saga.Definition) saga.Definition {
	steps := slices.Clone(d.Steps)
	for i := range steps {
		steps[i].Deadline = saga.Deadline{Timeout: s.Timeout(steps[i].Name), Retries: s.Retries, MaxTimeout: s.MaxTimeout}
	}
	d.Steps = steps
	return d
}
