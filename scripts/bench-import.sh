#!/usr/bin/env bash
# Peak memory of a large import (issue 4): N reads (default 1,000,000) of JSON lines, generated
# here, streamed by a release `lethe import` into a release `lethe serve` on the embedded default
# (local directory). Prints the peak RSS (VmHWM) of both processes, the wall time and reads/s,
# and the input size. Nothing is kept: everything lives in a temp dir removed at the end.
#
#   bash scripts/bench-import.sh [N] [IMAGE_BYTES]
#
# The reads are spread over the last 29 days (so none is past retention), ~1 KiB of metadata
# each, plates drawn from N/10 distinct values, with client read ids (so idempotency markers are
# written too). IMAGE_BYTES (default 0) adds a synthetic image of that size to each read
# (`lethe import --image-bytes`).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
IMAGE=${2:-0}
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin lethe
BIN=$(realpath "$TARGET/release/lethe")
WORK=$(mktemp -d /tmp/lethe-bench-import.XXXXXX)
SERVER=
cleanup() { [ -z "$SERVER" ] || kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

python3 - "$N" "$WORK/reads.jsonl.gz" <<'EOF'
import datetime, gzip, json, random, sys
n, out = int(sys.argv[1]), sys.argv[2]
now = datetime.datetime.now(datetime.timezone.utc)
span = 29 * 86400
rng = random.Random(7)
addr = "1200 Example Avenue North, Seattle WA 98109 United States; " * 12
with gzip.open(out, "wt", compresslevel=1) as f:
    for i in range(n):
        at = now - datetime.timedelta(seconds=span * (i + 1) / n)
        f.write(json.dumps({
            "read_id": f"bench-{i:08d}",
            "plate": "B%06d" % rng.randrange(max(n // 10, 1)),
            "captured_at": at.isoformat().replace("+00:00", "Z"),
            "camera_id": f"cam-{i % 97}",
            "lat": 47.6, "lon": -122.3, "confidence": 0.9,
            "source": {"address": addr, "location": "Plain car"},
        }))
        f.write("\n")
EOF
echo "input: $N reads, $(du -h "$WORK/reads.jsonl.gz" | cut -f1) gzip"

export LETHE_DATA_DIR=$WORK/data LETHE_POLICIES_DIR=$PWD/policies RUST_LOG=warn
unset LETHE_CONFIG
mkdir -p "$WORK/data"
(cd "$WORK" && "$BIN" init --approve-as admin >/dev/null)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$WORK" && exec "$BIN" serve --listen "127.0.0.1:$PORT" >"$WORK/serve.log" 2>&1) &
SERVER=$!
for _ in $(seq 1 600); do
  (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done

T0=$(date +%s.%N)
(cd "$WORK" && exec "$BIN" import "$WORK/reads.jsonl.gz" --as ingest-gateway --server "http://127.0.0.1:$PORT" \
  --image-bytes "$IMAGE" >"$WORK/import.out" 2>"$WORK/import.err") &
IMPORTER=$!
IMPORT_PEAK=0
while kill -0 "$IMPORTER" 2>/dev/null; do
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$IMPORTER/status" 2>/dev/null || echo 0)
  [ "${hwm:-0}" -gt "$IMPORT_PEAK" ] && IMPORT_PEAK=$hwm
  sleep 0.2
done
wait "$IMPORTER" || { echo "import failed:"; cat "$WORK/import.err" "$WORK/import.out"; exit 1; }
T1=$(date +%s.%N)
SERVER_PEAK=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER/status")
grep '^sent ' "$WORK/import.out"
python3 - "$N" "$T0" "$T1" "$SERVER_PEAK" "$IMPORT_PEAK" <<'EOF'
import sys
n, t0, t1, s, i = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
print(f"import of {n} reads: {t1 - t0:.1f} s, {n / (t1 - t0):.0f} reads/s")
print(f"peak RSS: server {s / 1024:.1f} MiB, importer {i / 1024:.1f} MiB")
EOF
