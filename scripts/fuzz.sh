#!/bin/sh
# make fuzz: every fuzz target of the module (found with go test -list), for
# FUZZTIME each (default 45s), one after the other. A failing input is
# written to its package's testdata/fuzz/<target>/ directory: fix the bug and
# commit the file as a regression seed (make test runs every seed corpus).
# FUZZ=<regexp> runs only the targets it matches; FUZZPARALLEL=<n> bounds the
# fuzzing processes (default: one per CPU).
set -eu
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-45s}
FUZZ=${FUZZ:-.}
parallel=""
if [ -n "${FUZZPARALLEL:-}" ]; then parallel="-parallel $FUZZPARALLEL"; fi

targets=$($GO test -list '^Fuzz' ./... | awk '
	/^Fuzz/ { names = names " " $1; next }
	/^ok/   { n = split(names, a, " "); for (i = 1; i <= n; i++) print $2, a[i]; names = "" }' | grep -E " .*$FUZZ" || true)
if [ -z "$targets" ]; then
	echo "fuzz: no target matches $FUZZ" >&2
	exit 1
fi
failed=""
while read -r pkg name; do
	echo "== $name ($pkg), $FUZZTIME"
	# shellcheck disable=SC2086
	if ! $GO test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 5s $parallel "$pkg"; then
		failed="$failed $name($pkg)"
	fi
done <<EOT
$targets
EOT
if [ -n "$failed" ]; then
	echo "fuzz: failing inputs found by:$failed (see testdata/fuzz/ of each package)" >&2
	exit 1
fi
echo "fuzz: $(echo "$targets" | wc -l | tr -d ' ') targets, no failure"
