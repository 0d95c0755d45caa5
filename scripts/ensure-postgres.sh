#!/usr/bin/env bash
# Makes sure PostgreSQL's server binaries (initdb, pg_ctl, postgres) exist;
# installs Debian's postgresql package when they do not. The local cluster
# itself is started by `sagabox up` / the tests, never as a system service.
set -euo pipefail

if [[ -n "${PG_BIN:-}" && -x "${PG_BIN}/initdb" ]]; then exit 0; fi
if command -v pg_config >/dev/null && [[ -x "$(pg_config --bindir)/initdb" ]]; then exit 0; fi
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then exit 0; fi

echo "ensure-postgres: PostgreSQL server binaries not found; installing with apt" >&2
SUDO=""
if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq postgresql >/dev/null
# The Debian package starts a system cluster on 5432; we do not need it.
$SUDO service postgresql stop >/dev/null 2>&1 || true
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || { echo "ensure-postgres: install failed" >&2; exit 1; }
