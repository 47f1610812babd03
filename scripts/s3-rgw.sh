#!/usr/bin/env bash
# Usage: scripts/s3-rgw.sh start|stop|status
#
# A throw-away real S3 server for tests, without Docker: a single-node Ceph cluster
# (1 mon, 1 in-memory OSD, no mgr, auth none *inside* the cluster) plus radosgw, which
# serves S3 with real SigV4 auth on 127.0.0.1:$S3_PORT (loopback only). Debian 12 packages.
# See docs/s3-testing.md for the settings that matter and the quirks found.
#
# `start` installs the packages if missing, (re)creates $S3_DIR, boots the cluster, creates a
# user and a bucket, and writes $S3_DIR/env with the exports the tests need:
#   LETHE_TEST_S3_ENDPOINT LETHE_TEST_S3_BUCKET AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
# `stop` kills exactly the processes `start` launched (by PID file); safe to run any number of times.
# `start` refuses to run while a cluster is up in $S3_DIR or the ports are taken. To run two at
# once (e.g. several worktrees on one machine), give each its own S3_DIR, S3_PORT and S3_MON_PORT.
set -euo pipefail
S3_DIR=${S3_DIR:-/tmp/lethe-rgw}
S3_PORT=${S3_PORT:-7480}
S3_MON_PORT=${S3_MON_PORT:-3300}   # ceph-mon (msgr2), loopback too
S3_ACCESS_KEY=${S3_ACCESS_KEY:-ciaccesskey}
S3_SECRET_KEY=${S3_SECRET_KEY:-cisecretkey1234}
S3_BUCKET=${S3_BUCKET:-lethe-test}
S3_REGION=${S3_REGION:-us-east-1}
S3_APT_LOG=${S3_APT_LOG:-/tmp/lethe-rgw-apt.log}
export CEPH_CONF=$S3_DIR/ceph.conf
ENDPOINT="http://127.0.0.1:$S3_PORT"
DAEMONS=(rgw osd mon)   # stop order

log() { echo "s3-rgw: $*" >&2; }

# fail MESSAGE [LOG...]: print MESSAGE and the tails of the given logs (default: all), stop, exit 1
fail() {
  local msg=$1 f; shift
  log "ERROR: $msg"
  [ $# -gt 0 ] || set -- "$S3_DIR"/log/*
  for f in "$@"; do
    [ -s "$f" ] || continue
    echo "----- tail $f -----" >&2
    tail -n 15 "$f" >&2
  done
  log "all logs: $S3_DIR/log/"
  stop >/dev/null 2>&1 || true
  exit 1
}

install_packages() {
  if command -v radosgw >/dev/null && command -v ceph-osd >/dev/null && command -v ceph-mon >/dev/null \
     && command -v radosgw-admin >/dev/null && command -v monmaptool >/dev/null && command -v curl >/dev/null; then
    return
  fi
  log "installing ceph-mon ceph-osd radosgw curl (log: $S3_APT_LOG)"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  if ! { $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q \
           --no-install-recommends ceph-mon ceph-osd radosgw curl; } >"$S3_APT_LOG" 2>&1; then
    tail -n 30 "$S3_APT_LOG" >&2
    log "ERROR: package installation failed (full log: $S3_APT_LOG)"
    exit 1
  fi
}

# PID of daemon $1 if its PID file names a live process of the expected program, else nothing.
live_pid() {
  local f="$S3_DIR/$1.pid" pid prog
  [ -f "$f" ] || return 0
  pid=$(cat "$f" 2>/dev/null) || return 0
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  case $1 in rgw) prog=radosgw ;; osd) prog=ceph-osd ;; mon) prog=ceph-mon ;; esac
  # guard against PID reuse: the process must be the program we started
  if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q "$prog"; then echo "$pid"; fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  local t0=$SECONDS i
  install_packages
  # Never take over a running cluster: on a shared machine it may be someone else's run.
  local p
  for p in "${DAEMONS[@]}"; do
    if [ -n "$(live_pid "$p")" ]; then
      log "ERROR: a cluster is already running in $S3_DIR; run '$0 stop' first, or use another S3_DIR, S3_PORT, S3_MON_PORT"
      exit 1
    fi
  done
  if port_busy "$S3_PORT" || port_busy "$S3_MON_PORT"; then
    log "ERROR: 127.0.0.1:$S3_PORT or :$S3_MON_PORT is already in use by another process (set S3_PORT / S3_MON_PORT)"
    exit 1
  fi
  rm -rf "$S3_DIR"; mkdir -p "$S3_DIR"/{mon,osd/ceph-0,log,run}
  local fsid; fsid=$(cat /proc/sys/kernel/random/uuid)
  cat >"$CEPH_CONF" <<CONF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$S3_MON_PORT
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
# with auth=none the default 'secure' msgr2 modes leave no usable mode -> EACCES, radosgw hangs
ms mon client mode = crc
ms client mode = crc
ms cluster mode = crc
ms service mode = crc
ms mon cluster mode = crc
ms mon service mode = crc
run dir = $S3_DIR/run
admin socket = $S3_DIR/run/\$name.asok
log file = $S3_DIR/log/\$name.log
mon data = $S3_DIR/mon/\$cluster-\$id
osd data = $S3_DIR/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = 4294967296
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 1
mon data avail crit = 0
[client.rgw.ci]
rgw frontends = beast endpoint=127.0.0.1:$S3_PORT tcp_nodelay=1
# a lifecycle "day" lasts 10 s, so backstop lifecycle rules can be tested
rgw lc debug interval = 10
CONF
  monmaptool --create --addv a "[v2:127.0.0.1:$S3_MON_PORT]" --fsid "$fsid" "$S3_DIR/monmap" \
    >"$S3_DIR/log/monmap.out" 2>&1 || fail "monmaptool failed" "$S3_DIR/log/monmap.out"
  ceph-mon --mkfs -i a --monmap "$S3_DIR/monmap" >"$S3_DIR/log/mon-mkfs.out" 2>&1 || fail "ceph-mon --mkfs failed" "$S3_DIR/log/mon-mkfs.out"
  ceph-mon -f -i a >"$S3_DIR/log/mon.out" 2>&1 &
  echo $! >"$S3_DIR/mon.pid"
  for i in $(seq 1 120); do timeout 5 ceph -s >/dev/null 2>&1 && break; sleep 0.5; done
  timeout 10 ceph -s >/dev/null 2>&1 || fail "ceph-mon did not come up" "$S3_DIR/log/mon.out" "$S3_DIR/log/mon.a.log"
  local osd_uuid; osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  timeout 30 ceph osd new "$osd_uuid" >/dev/null 2>"$S3_DIR/log/osd-new.out" || fail "ceph osd new failed" "$S3_DIR/log/osd-new.out"
  ceph-osd -i 0 --mkfs --osd-uuid "$osd_uuid" >"$S3_DIR/log/osd-mkfs.out" 2>&1 || fail "ceph-osd --mkfs failed" "$S3_DIR/log/osd-mkfs.out"
  ceph-osd -f -i 0 >"$S3_DIR/log/osd.out" 2>&1 &
  echo $! >"$S3_DIR/osd.pid"
  for i in $(seq 1 120); do timeout 5 ceph osd stat 2>/dev/null | grep -q '1 up' && break; sleep 0.5; done
  timeout 5 ceph osd stat 2>/dev/null | grep -q '1 up' || fail "ceph-osd did not come up" "$S3_DIR/log/osd.out" "$S3_DIR/log/osd.0.log"
  radosgw -f -n client.rgw.ci >"$S3_DIR/log/rgw.out" 2>&1 &
  echo $! >"$S3_DIR/rgw.pid"
  for i in $(seq 1 240); do
    curl -sf -o /dev/null "$ENDPOINT/" && break
    [ -n "$(live_pid rgw)" ] || break
    sleep 0.5
  done
  curl -sf -o /dev/null "$ENDPOINT/" || fail "radosgw did not come up on $ENDPOINT" "$S3_DIR/log/rgw.out" "$S3_DIR/log/client.rgw.ci.log"
  timeout 60 radosgw-admin user create --uid=ci --display-name=ci \
    --access-key="$S3_ACCESS_KEY" --secret-key="$S3_SECRET_KEY" >"$S3_DIR/log/user-create.out" 2>&1 \
    || fail "radosgw-admin user create failed" "$S3_DIR/log/user-create.out" "$S3_DIR/log/client.rgw.ci.log"
  # A second user with no rights of its own: tests grant it read and write but not delete on a
  # bucket (bucket policy), to prove the sweeper fails loudly without delete permission.
  timeout 60 radosgw-admin user create --uid=nodelete --display-name=nodelete \
    --access-key="${S3_ACCESS_KEY}nd" --secret-key="${S3_SECRET_KEY}nd" >"$S3_DIR/log/user-create-nodelete.out" 2>&1 \
    || fail "radosgw-admin user create (nodelete) failed" "$S3_DIR/log/user-create-nodelete.out"
  # The default bucket (tests mostly create their own, one per test, for isolation).
  curl -sf -o /dev/null -X PUT --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" --aws-sigv4 "aws:amz:$S3_REGION:s3" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$ENDPOINT/$S3_BUCKET" || fail "creating bucket $S3_BUCKET failed" "$S3_DIR/log/client.rgw.ci.log"
  cat >"$S3_DIR/env" <<ENV
export LETHE_TEST_S3_ENDPOINT=$ENDPOINT
export LETHE_TEST_S3_BUCKET=$S3_BUCKET
export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
export AWS_REGION=$S3_REGION
export LETHE_TEST_S3_NODELETE_ACCESS_KEY_ID=${S3_ACCESS_KEY}nd
export LETHE_TEST_S3_NODELETE_SECRET_ACCESS_KEY=${S3_SECRET_KEY}nd
ENV
  local rss=0 p pid
  for p in "${DAEMONS[@]}"; do
    pid=$(live_pid "$p"); [ -n "$pid" ] || continue
    rss=$((rss + $(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")))
  done
  log "S3 ready: $ENDPOINT bucket=$S3_BUCKET key=$S3_ACCESS_KEY in $((SECONDS - t0)) s, RSS $((rss / 1024)) MiB; env: $S3_DIR/env"
}

stop() {
  local p pid stopped=0
  for p in "${DAEMONS[@]}"; do
    pid=$(live_pid "$p")
    if [ -n "$pid" ]; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
      stopped=1
    fi
    rm -f "$S3_DIR/$p.pid"
  done
  rm -f "$S3_DIR/env"
  if [ $stopped = 1 ]; then log "stopped"; else log "not running"; fi
}

status() {
  local p pid up=0
  for p in "${DAEMONS[@]}"; do
    pid=$(live_pid "$p")
    if [ -n "$pid" ]; then echo "$p: running (pid $pid)"; up=1; else echo "$p: stopped"; fi
  done
  [ $up = 1 ]
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
