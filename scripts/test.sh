#!/usr/bin/env bash
# THE test command: `bash scripts/test.sh` (CI runs it through .ci/run).
#
# Installs what is missing, starts a real S3 server (radosgw, scripts/s3-rgw.sh) and runs
#   cargo fmt --all -- --check
#   cargo clippy --all-targets --locked -- -D warnings
#   cargo test --locked            (the whole suite, real-S3 tests required: LETHE_REQUIRE_S3=1)
# then always stops the server. Exits non-zero if any step fails. Every step runs even after an
# earlier one failed, so one run shows all problems. Full logs: $LETHE_CI_LOG_DIR.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export S3_DIR=${S3_DIR:-/tmp/lethe-rgw}
export S3_PORT=${S3_PORT:-7480}
LOG_DIR=${LETHE_CI_LOG_DIR:-/tmp/lethe-ci-logs}
mkdir -p "$LOG_DIR"
export S3_APT_LOG=$LOG_DIR/apt.log
T0=$SECONDS
FAILED=()

say() { printf '==> %s\n' "$*"; }

cleanup() {
  bash "$ROOT/scripts/s3-rgw.sh" stop >>"$LOG_DIR/s3-rgw.log" 2>&1 || true
}
# Steps run in the background and are waited for, so that INT/TERM interrupt them at once
# (bash defers traps while a foreground child runs); the trap ends the step, then EXIT cleans up.
CHILD=
exec 9>&2   # the real stderr, for messages from traps that fire inside a redirected step
interrupted() {
  echo "==> interrupted; stopping" >&9
  [ -z "$CHILD" ] || kill -TERM "$CHILD" 2>/dev/null || true
  exit 130
}
trap cleanup EXIT
trap interrupted INT TERM
# step CMD...: run CMD as an interruptible step, return its status
step() {
  "$@" &
  CHILD=$!
  wait "$CHILD"
  local rc=$?
  CHILD=
  return $rc
}

# --- tools ------------------------------------------------------------------------------------
if command -v rustup >/dev/null; then
  for c in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$c"; then
      say "rustup component add $c"
      rustup component add "$c" >>"$LOG_DIR/rustup.log" 2>&1 || { cat "$LOG_DIR/rustup.log"; exit 1; }
    fi
  done
fi

install_python_tools() {
  # python3 with venv for tests/python_client.rs, which installs grpcio-tools into a virtualenv
  # under the target directory itself when it is missing.
  if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    say "apt-get install python3 python3-venv"
    { apt-get update -q && apt-get install -y -q python3 python3-venv; } >>"$LOG_DIR/apt.log" 2>&1 || { tail -n 20 "$LOG_DIR/apt.log"; exit 1; }
  fi
}
install_python_tools

# faketime: the end-to-end test moves the sweeper's clock with it, as the README shows.
if ! command -v faketime >/dev/null; then
  say "apt-get install faketime"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q faketime; } >>"$LOG_DIR/apt.log" 2>&1 || { tail -n 20 "$LOG_DIR/apt.log"; exit 1; }
fi

# --- step runner ------------------------------------------------------------------------------
# run NAME CMD...: output to $LOG_DIR/NAME.log; printed only when the step fails.
run() {
  local name=$1; shift
  local t=$SECONDS
  if step "$@" >"$LOG_DIR/$name.log" 2>&1; then
    say "$name ok ($((SECONDS - t)) s)"
  else
    say "$name FAILED ($((SECONDS - t)) s): $*"
    cat "$LOG_DIR/$name.log"
    FAILED+=("$name")
  fi
}

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

# --- real S3 server ---------------------------------------------------------------------------
say "starting radosgw on 127.0.0.1:$S3_PORT"
if ! step bash scripts/s3-rgw.sh start >"$LOG_DIR/s3-rgw.log" 2>&1; then
  cat "$LOG_DIR/s3-rgw.log"
  say "FAILED: could not start the S3 server"
  exit 1
fi
tail -n 1 "$LOG_DIR/s3-rgw.log"
# shellcheck disable=SC1091
source "$S3_DIR/env"   # LETHE_TEST_S3_ENDPOINT LETHE_TEST_S3_BUCKET AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
export LETHE_TEST_S3_ENDPOINT LETHE_TEST_S3_BUCKET AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
export LETHE_TEST_S3_NODELETE_ACCESS_KEY_ID LETHE_TEST_S3_NODELETE_SECRET_ACCESS_KEY
export LETHE_REQUIRE_S3=1

# --- checks -----------------------------------------------------------------------------------
run fmt cargo fmt --all -- --check
run clippy cargo clippy --all-targets --locked -- -D warnings

say "cargo test --locked --no-fail-fast"
t=$SECONDS
step cargo test --locked --no-fail-fast >"$LOG_DIR/test.log" 2>&1
rc=$?
# The runner's summary: one line per test binary, plus failures in full.
grep -E '^\s+Running |^\s+Doc-tests |^test result:' "$LOG_DIR/test.log" | sed 's/^ *//'
if [ $rc -ne 0 ]; then
  say "test FAILED ($((SECONDS - t)) s), full log: $LOG_DIR/test.log"
  # everything from the first failure report / compile error on
  awk '/^failures:|^error(\[|:)/ {p=1} p' "$LOG_DIR/test.log" | tail -n 300
  FAILED+=(test)
else
  say "test ok ($((SECONDS - t)) s)"
fi

if [ ${#FAILED[@]} -gt 0 ]; then
  say "FAILED: ${FAILED[*]} (logs in $LOG_DIR, total $((SECONDS - T0)) s)"
  exit 1
fi
say "all checks passed in $((SECONDS - T0)) s"
