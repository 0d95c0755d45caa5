#!/bin/sh
# Registers every Kafka Connect connector in $CONNECTORS_DIR with the Connect
# REST API at $CONNECT_URL, then waits until each connector and its tasks run.
#
# Each file NAME.json is a flat connector config map; NAME is the connector
# name. `PUT /connectors/NAME/config` creates the connector or replaces its
# config, so running this again (every `docker compose up`) is harmless.
#
# docker-compose.yml starts this one-shot container only when Connect and the
# three services are healthy: the services create their tables at start
# (MIGRATE=true), and Debezium can only create a filtered publication for
# tables that exist.
#
# Exits non-zero, with Connect's answer on stderr, on a rejected config (any
# non-2xx answer but the transient 409 and 5xx, which are retried until
# $TIMEOUT_SECONDS), on a connector or task that FAILED, or when something is
# not ready in time.
set -eu

CONNECT_URL=${CONNECT_URL:-http://connect:8083}
CONNECTORS_DIR=${CONNECTORS_DIR:-/connectors}
TIMEOUT_SECONDS=${TIMEOUT_SECONDS:-120}
BODY=${TMPDIR:-/tmp}/register-connectors.$$

log() { printf 'register-connectors: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}
trap 'rm -f "$BODY"' EXIT

# Connect's REST API answers before the worker has joined its group; a 2xx
# on /connectors means it can take configs.
waited=0
until curl -fsS -o /dev/null "$CONNECT_URL/connectors" 2>/dev/null; do
	[ "$waited" -lt "$TIMEOUT_SECONDS" ] || die "Kafka Connect at $CONNECT_URL not ready after ${TIMEOUT_SECONDS}s"
	sleep 2
	waited=$((waited + 2))
done

names=""
for file in "$CONNECTORS_DIR"/*.json; do
	[ -f "$file" ] || die "no connector files (*.json) in $CONNECTORS_DIR"
	name=$(basename "$file" .json)
	waited=0
	while :; do
		code=$(curl -sS -o "$BODY" -w '%{http_code}' -X PUT \
			-H 'Content-Type: application/json' -H 'Accept: application/json' \
			--data-binary "@$file" "$CONNECT_URL/connectors/$name/config") || code=000
		case "$code" in
		2??)
			log "$name: registered (HTTP $code)"
			break
			;;
		# A worker still joining its group answers 409 (rebalance) or 5xx:
		# retry those until the timeout, fail on anything else at once.
		409 | 5?? | 000)
			if [ "$waited" -ge "$TIMEOUT_SECONDS" ]; then
				cat "$BODY" >&2 2>/dev/null || :
				echo >&2
				die "PUT $CONNECT_URL/connectors/$name/config: HTTP $code after ${TIMEOUT_SECONDS}s"
			fi
			log "$name: HTTP $code, retrying"
			sleep 2
			waited=$((waited + 2))
			;;
		*)
			cat "$BODY" >&2
			echo >&2
			die "PUT $CONNECT_URL/connectors/$name/config: HTTP $code"
			;;
		esac
	done
	names="$names $name"
done

# A connector whose database user lacks a privilege, or whose table does not
# exist, is accepted by PUT and fails a moment later: wait for RUNNING.
for name in $names; do
	waited=0
	while :; do
		code=$(curl -sS -o "$BODY" -w '%{http_code}' "$CONNECT_URL/connectors/$name/status") || code=000
		states=""
		if [ "$code" = 200 ]; then
			states=$(tr -d ' \n\r\t' <"$BODY" | grep -o '"state":"[A-Z_]*"' | cut -d'"' -f4 | tr '\n' ' ')
		fi
		case " $states" in
		*" FAILED "*)
			cat "$BODY" >&2
			echo >&2
			die "$name: connector or task FAILED"
			;;
		esac
		# The connector's own state plus at least one task, all RUNNING.
		total=0
		running=0
		for state in $states; do
			total=$((total + 1))
			if [ "$state" = RUNNING ]; then
				running=$((running + 1))
			fi
		done
		if [ "$total" -ge 2 ] && [ "$running" -eq "$total" ]; then
			log "$name: RUNNING"
			break
		fi
		[ "$waited" -lt "$TIMEOUT_SECONDS" ] || {
			cat "$BODY" >&2
			echo >&2
			die "$name: not RUNNING after ${TIMEOUT_SECONDS}s (states: ${states:-none}, HTTP $code)"
		}
		sleep 2
		waited=$((waited + 2))
	done
done
log "all connectors running:$names"
