#!/usr/bin/env bash
# tests/emulators.sh: install, start, check and stop the AWS emulators that
# flux-engine's integration tests talk to. Everything listens on loopback only.
#
#   Kinesis      kinesis-local (npm, the JavaScript build of kinesis-mock),
#                plain HTTP, JSON 1.1 and CBOR protocols.
#   S3 and EMR   one moto_server (PyPI moto, in a virtualenv); moto picks the
#                service from the SigV4 credential scope of each request.
#
# Usage:
#   tests/emulators.sh install   install (or check) the pinned emulators only
#   tests/emulators.sh up        install if needed, start both emulators on
#                                free loopback ports, wait until they answer,
#                                write the state file and print its `export`
#                                lines on stdout (everything else goes to stderr)
#   tests/emulators.sh down      stop what `up` started; no error if nothing runs
#   tests/emulators.sh status    say what runs where (exit 0 only if both answer)
#   tests/emulators.sh env       print the `export` lines of a running set again
#   tests/emulators.sh duckdb    install (or check) the pinned DuckDB only and print
#                                its `export FLUX_TEST_DUCKDB_PYTHON=…` line (the SQL
#                                tests need DuckDB but no emulator)
#
#   eval "$(tests/emulators.sh up)"   # note: eval hides a failing `up`; under
#                                     # set -e prefer:
#   env_lines=$(tests/emulators.sh up) && eval "$env_lines"
#
# Variables exported by `up` (also written to the state file):
#   FLUX_TEST_KINESIS_ENDPOINT   http://127.0.0.1:PORT (kinesis-local, plain HTTP)
#   FLUX_TEST_S3_ENDPOINT        http://127.0.0.1:PORT (moto; needs path-style)
#   FLUX_TEST_EMR_ENDPOINT       same moto endpoint as S3
#   FLUX_EMULATORS_KINESIS_PID, FLUX_EMULATORS_KINESIS_LOG
#   FLUX_EMULATORS_MOTO_PID,    FLUX_EMULATORS_MOTO_LOG
#   FLUX_EMULATORS_STATE         the state file itself
#   FLUX_TEST_DUCKDB_PYTHON      a python with the pinned duckdb package (SQL tests;
#                                DuckDB is not an emulator, but is installed here too)
#   FLUX_TEST_DUCKDB_S3_PYTHON   a python with duckdb $DUCKDB_S3_VERSION, whose httpfs and aws
#   FLUX_TEST_DUCKDB_S3_EXTENSIONS  extensions are in this extension directory (S3 views
#                                run against moto without downloading anything)
#   AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
#
# Settings (environment):
#   FLUX_CACHE              cache root (default ~/.cache/flux-engine), outside
#                           the clone: npm/, venv/, logs/, run/, emulators.env
#   FLUX_EMULATORS_STATE    state file (default $FLUX_CACHE/emulators.env)
#   FLUX_EMULATORS_TIMEOUT  seconds to wait for each emulator (default 60)
#   FLUX_KINESIS_LOG_LEVEL  kinesis-local LOG_LEVEL (default INFO)
#   FLUX_PYTHON             python used to make the virtualenv (default python3)
#
# Notes for tests (seen with these versions):
#   - kinesis-local: a new stream is CREATING for ~0.5 s (CREATE_STREAM_DURATION)
#     before ACTIVE; requests without an Authorization header are refused
#     (MissingAuthenticationToken); signatures are not checked. It answers JSON
#     1.1 or CBOR, whichever the request used. Account id 000000000000.
#   - moto: S3 needs path-style addressing (force_path_style). Unsigned object
#     GETs are 403 (anonymous ACL check); any SigV4 header passes. A PUT with
#     Content-Type application/x-www-form-urlencoded (curl -d/--data-binary's
#     default) stores an EMPTY object: send application/octet-stream. Account
#     id 123456789012.
#
# Needs: bash, node (20) + npm, python3 (3.11) with venv or pip, curl. Network
# only for the first install (npm registry and PyPI). `ss` (iproute2) is used
# to double-check the loopback binding when it is present.

set -euo pipefail

# ---------------------------------------------------------------------------
# Pinned versions. Changing any of them changes the install stamps below, so
# the next run reinstalls that emulator from scratch.
# ---------------------------------------------------------------------------
readonly KINESIS_LOCAL_VERSION="0.6.2"
readonly MOTO_VERSION="5.2.5"
# moto's "server" extra drags in cfn-lint, docker, aws-xray-sdk, ...; S3 and
# EMR only need moto[s3] plus the Flask bits of moto_server (the "emr" extra
# exists but has no dependencies; it is named here to document the intent).
readonly MOTO_REQUIREMENTS=(
  "moto[s3,emr]==${MOTO_VERSION}"
  "flask==3.1.3"
  "flask-cors==6.0.5"
)

# DuckDB executes the views the `ddl` sink generates, in the SQL tests. The
# Python wheel (it bundles the engine; no network at run time) in a venv of its
# own, so that pinning it never rebuilds the moto venv of a running set.
readonly DUCKDB_VERSION="2.0.0"
# DuckDB reads S3 through its httpfs and aws extensions, which it downloads from
# extensions.duckdb.org: out of reach here. PyPI carries them as packages for some DuckDB
# versions (not 2.0.0): this one, in a virtualenv of its own, laid out as an extension
# directory, lets the tests run the generated S3 views against moto with no download.
readonly DUCKDB_S3_VERSION="1.5.5"

readonly LOOPBACK="127.0.0.1"

# ---------------------------------------------------------------------------
# Paths. FLUX_CACHE is made absolute so that the state file stays valid from
# any working directory.
# ---------------------------------------------------------------------------
FLUX_CACHE="${FLUX_CACHE:-${HOME:-/root}/.cache/flux-engine}"
mkdir -p "$FLUX_CACHE"
FLUX_CACHE="$(cd "$FLUX_CACHE" && pwd -P)"
readonly FLUX_CACHE
readonly NPM_PREFIX="$FLUX_CACHE/npm"
readonly VENV="$FLUX_CACHE/venv"
readonly DUCKDB_VENV="$FLUX_CACHE/duckdb-venv"
readonly DUCKDB_S3_VENV="$FLUX_CACHE/duckdb-s3-venv"
readonly LOG_DIR="$FLUX_CACHE/logs"
readonly RUN_DIR="$FLUX_CACHE/run"
readonly STATE_FILE="${FLUX_EMULATORS_STATE:-$FLUX_CACHE/emulators.env}"
readonly START_TIMEOUT="${FLUX_EMULATORS_TIMEOUT:-60}"
readonly PYTHON="${FLUX_PYTHON:-python3}"
readonly KINESIS_PKG="$NPM_PREFIX/node_modules/kinesis-local"
readonly PRELOAD_JS="$RUN_DIR/loopback-preload.js"

# Fake SigV4 headers: kinesis-local answers MissingAuthenticationToken without
# an Authorization header, and moto routes a request to a service by the
# credential scope (an unsigned POST / lands in S3, not EMR).
sigv4_auth() { # $1 = service name in the credential scope
  printf 'Authorization: AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/%s/aws4_request, SignedHeaders=host;x-amz-date, Signature=0' "$1"
}

# ---------------------------------------------------------------------------
# Small helpers. Messages go to stderr: stdout carries only `export` lines.
# ---------------------------------------------------------------------------
log() { printf 'emulators: %s\n' "$*" >&2; }
die() { printf 'emulators: error: %s\n' "$*" >&2; exit 1; }

need() { # need CMD [hint]
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH${2:+ ($2)}"
}

# Print the last lines of a log file to stderr, framed, for error reports.
log_tail() { # log_tail NAME FILE
  if [[ -s "$2" ]]; then
    printf -- '----- last 40 lines of %s (%s) -----\n' "$1" "$2" >&2
    tail -n 40 "$2" >&2 || true
    printf -- '----- end of %s log -----\n' "$1" >&2
  else
    printf 'emulators: (%s log %s is empty)\n' "$1" "$2" >&2
  fi
}

# True if PID is a live process (not a zombie) whose command line contains
# MARKER; guards against pid reuse after a reboot or a long pause.
pid_matches() { # pid_matches PID MARKER
  local pid="$1" marker="$2" state cmdline
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/stat" ]]; then
    state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
    [[ "$state" != "Z" ]] || return 1
  fi
  if [[ -r "/proc/$pid/cmdline" ]]; then
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmdline" == *"$marker"* ]] || return 1
  fi
  return 0
}

# True while PID runs and is not a zombie.
pid_alive() { # pid_alive PID
  local pid="$1" state
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/stat" ]]; then
    state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
    [[ "$state" != "Z" ]] || return 1
  fi
  return 0
}

# Serialise installs between concurrent runs sharing one cache (flock is part
# of util-linux, present on Debian; without it we just go ahead).
with_install_lock() {
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$FLUX_CACHE/install.lock"
    flock -w 900 9 || die "timed out waiting for $FLUX_CACHE/install.lock"
  fi
  "$@"
  if command -v flock >/dev/null 2>&1; then
    exec 9>&-
  fi
}

# ---------------------------------------------------------------------------
# Install: kinesis-local from npm into $FLUX_CACHE/npm.
# The stamp records what was installed; a mismatch (version bump, interrupted
# install) wipes the directory and installs again.
# ---------------------------------------------------------------------------
install_kinesis() {
  local stamp="$NPM_PREFIX/.flux-install-stamp"
  local want="kinesis-local@${KINESIS_LOCAL_VERSION}"
  if [[ -f "$stamp" && "$(<"$stamp")" == "$want" && -f "$KINESIS_PKG/main.js" ]]; then
    return 0
  fi
  need node "install Node.js 20"
  need npm "install npm"
  log "installing $want into $NPM_PREFIX"
  rm -rf "$NPM_PREFIX"
  mkdir -p "$NPM_PREFIX"
  # Run from the prefix so that no package.json/.npmrc of the clone is used;
  # npm's own output goes to stderr to keep stdout clean.
  (cd "$NPM_PREFIX" && npm install --prefix "$NPM_PREFIX" --no-audit --no-fund \
    --no-update-notifier --save-exact --loglevel=error "$want") >&2 \
    || die "npm install $want failed"
  [[ -f "$KINESIS_PKG/main.js" ]] || die "npm installed $want but $KINESIS_PKG/main.js is missing"
  kinesis_cert_path >/dev/null || die "no server.json inside $KINESIS_PKG"
  printf '%s' "$want" >"$stamp"
}

# The JS build crashes at start (ENOENT server.json) unless
# KINESIS_MOCK_CERT_PATH names the self-signed certificate bundle it ships.
kinesis_cert_path() {
  local cert
  cert="$(find "$KINESIS_PKG" -maxdepth 3 -name server.json -type f -print -quit 2>/dev/null || true)"
  [[ -n "$cert" ]] || return 1
  printf '%s\n' "$cert"
}

# ---------------------------------------------------------------------------
# Install: moto into the virtualenv $FLUX_CACHE/venv.
# The stamp holds the requirement list and the base interpreter, so a moto pin
# bump or a different python rebuilds the venv.
# ---------------------------------------------------------------------------
moto_stamp_want() {
  local py
  py="$("$PYTHON" -c 'import sys; print(sys.version.split()[0], sys.base_prefix)')" \
    || die "cannot run $PYTHON"
  printf '%s | python %s' "${MOTO_REQUIREMENTS[*]}" "$py"
}

install_moto() {
  need "$PYTHON" "install python3.11"
  local stamp="$VENV/.flux-install-stamp" want
  want="$(moto_stamp_want)"
  if [[ -f "$stamp" && "$(<"$stamp")" == "$want" && -x "$VENV/bin/moto_server" ]] \
    && "$VENV/bin/python" -c '' 2>/dev/null; then
    return 0
  fi
  log "installing ${MOTO_REQUIREMENTS[*]} into $VENV"
  rm -rf "$VENV"
  local -a pip
  if "$PYTHON" -m venv "$VENV" >&2 2>/dev/null; then
    pip=("$VENV/bin/python" -m pip)
  else
    # Debian's python3 without the python3-venv package has no ensurepip:
    # make a bare venv and let the system pip install into it (pip >= 22.3).
    log "python -m venv failed (no ensurepip?); trying --without-pip + system pip"
    rm -rf "$VENV"
    "$PYTHON" -m venv --without-pip "$VENV" >&2 \
      || die "cannot create a virtualenv with $PYTHON (apt-get install -y python3-venv)"
    "$PYTHON" -m pip --version >/dev/null 2>&1 \
      || die "neither ensurepip nor pip is available for $PYTHON (apt-get install -y python3-venv)"
    pip=("$PYTHON" -m pip --python "$VENV/bin/python")
  fi
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
    "${pip[@]}" install --quiet "${MOTO_REQUIREMENTS[@]}" >&2 \
    || die "pip install ${MOTO_REQUIREMENTS[*]} failed"
  # Import what moto_server needs for S3 and EMR now rather than at first use.
  "$VENV/bin/python" -c 'import moto.server, moto.s3.models, moto.s3.responses, moto.emr.models, moto.emr.responses' >&2 \
    || die "moto installed but its server, s3 or emr modules do not import"
  [[ -x "$VENV/bin/moto_server" ]] || die "moto installed but $VENV/bin/moto_server is missing"
  printf '%s' "$want" >"$stamp"
}

# ---------------------------------------------------------------------------
# Install: duckdb (PyPI wheel) into its own virtualenv, with its own stamp.
# ---------------------------------------------------------------------------
install_duckdb() {
  need "$PYTHON" "install python3.11"
  local stamp="$DUCKDB_VENV/.flux-install-stamp" want
  want="duckdb==$DUCKDB_VERSION | python $("$PYTHON" -c 'import sys; print(sys.version.split()[0], sys.base_prefix)')"
  if [[ -f "$stamp" && "$(<"$stamp")" == "$want" ]] \
    && "$DUCKDB_VENV/bin/python" -c 'import duckdb' 2>/dev/null; then
    return 0
  fi
  log "installing duckdb==$DUCKDB_VERSION into $DUCKDB_VENV"
  rm -rf "$DUCKDB_VENV"
  local -a pip
  if "$PYTHON" -m venv "$DUCKDB_VENV" >&2 2>/dev/null; then
    pip=("$DUCKDB_VENV/bin/python" -m pip)
  else
    rm -rf "$DUCKDB_VENV"
    "$PYTHON" -m venv --without-pip "$DUCKDB_VENV" >&2 \
      || die "cannot create a virtualenv with $PYTHON (apt-get install -y python3-venv)"
    pip=("$PYTHON" -m pip --python "$DUCKDB_VENV/bin/python")
  fi
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
    "${pip[@]}" install --quiet "duckdb==$DUCKDB_VERSION" >&2 \
    || die "pip install duckdb==$DUCKDB_VERSION failed"
  "$DUCKDB_VENV/bin/python" -c "import duckdb; assert duckdb.__version__ == '$DUCKDB_VERSION', duckdb.__version__" >&2 \
    || die "duckdb installed but does not import as $DUCKDB_VERSION"
  printf '%s' "$want" >"$stamp"
}

# ---------------------------------------------------------------------------
# Install: a second duckdb with its httpfs and aws extensions from PyPI (see
# DUCKDB_S3_VERSION), and the extension directory DuckDB loads them from
# ($DUCKDB_S3_VENV/extensions/v<version>/<platform>/).
# ---------------------------------------------------------------------------
duckdb_platform() {
  case "$(uname -m)" in
    x86_64) echo linux_amd64 ;;
    aarch64 | arm64) echo linux_arm64 ;;
    *) die "no DuckDB extension packages for $(uname -m)" ;;
  esac
}

install_duckdb_s3() {
  need "$PYTHON" "install python3.11"
  local v="$DUCKDB_S3_VERSION" stamp="$DUCKDB_S3_VENV/.flux-install-stamp" want dir
  local -a packages=("duckdb==$v" "duckdb-extension-httpfs==$v" "duckdb-extension-aws==$v")
  want="${packages[*]} | python $("$PYTHON" -c 'import sys; print(sys.version.split()[0], sys.base_prefix)')"
  dir="$DUCKDB_S3_VENV/extensions/v$v/$(duckdb_platform)"
  if [[ -f "$stamp" && "$(<"$stamp")" == "$want" && -f "$dir/httpfs.duckdb_extension" ]]; then
    return 0
  fi
  log "installing ${packages[*]} into $DUCKDB_S3_VENV"
  rm -rf "$DUCKDB_S3_VENV"
  "$PYTHON" -m venv "$DUCKDB_S3_VENV" >&2 \
    || die "cannot create a virtualenv with $PYTHON (apt-get install -y python3-venv)"
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
    "$DUCKDB_S3_VENV/bin/python" -m pip install --quiet "${packages[@]}" >&2 \
    || die "pip install ${packages[*]} failed"
  mkdir -p "$dir"
  local site ext
  site=$("$DUCKDB_S3_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  for ext in httpfs aws; do
    cp "$site/duckdb_extension_$ext/extensions/v$v/$ext.duckdb_extension" "$dir/" \
      || die "the duckdb-extension-$ext package has no $ext.duckdb_extension for v$v"
  done
  printf '%s' "$want" >"$stamp"
}

install_all() {
  need curl "apt-get install -y curl"
  install_kinesis
  install_moto
  install_duckdb
  install_duckdb_s3
}

# ---------------------------------------------------------------------------
# Loopback pinning for kinesis-local, which has no bind-address setting and
# otherwise listens on every interface. The preload rewrites every TCP
# net.Server.listen (http/https/tls servers all inherit it) to 127.0.0.1 and
# kills the process if a listener still ends up elsewhere.
# ---------------------------------------------------------------------------
write_preload() {
  mkdir -p "$RUN_DIR"
  cat >"$PRELOAD_JS.tmp" <<'EOF'
'use strict';
// Written by tests/emulators.sh: force every TCP listener onto 127.0.0.1.
const net = require('net');
const HOST = '127.0.0.1';
const origListen = net.Server.prototype.listen;

function isLoopback(a) {
  return typeof a === 'string' && (a.startsWith('127.') || a === '::1' || a.startsWith('::ffff:127.'));
}

net.Server.prototype.listen = function listen(...args) {
  const cb = typeof args[args.length - 1] === 'function' ? args.pop() : undefined;
  const first = args[0];
  let opts;
  if (first !== null && typeof first === 'object' && !('_handle' in first) && !('fd' in first) && first.path === undefined) {
    // listen({port, host, ...})
    opts = Object.assign({}, first, { host: HOST });
    delete opts.ipv6Only;
  } else if (first === undefined || first === null || typeof first === 'number' ||
             (typeof first === 'string' && /^\d+$/.test(first))) {
    // listen(), listen(port[, host][, backlog])
    opts = { port: first == null ? 0 : Number(first), host: HOST };
    const backlog = args.slice(1).find((a) => typeof a === 'number');
    if (backlog !== undefined) opts.backlog = backlog;
  } else {
    // Unix socket path, handle or fd: not a TCP port, leave it alone.
    if (cb) args.push(cb);
    return origListen.apply(this, args);
  }
  this.once('listening', () => {
    const addr = this.address();
    if (addr && typeof addr === 'object' && !isLoopback(addr.address)) {
      process.stderr.write(`[loopback-preload] refusing non-loopback listener ${addr.address}:${addr.port}\n`);
      process.exit(70);
    }
    process.stderr.write(`[loopback-preload] listening on ${addr.address}:${addr.port}\n`);
  });
  return cb ? origListen.call(this, opts, cb) : origListen.call(this, opts);
};
EOF
  mv -f "$PRELOAD_JS.tmp" "$PRELOAD_JS"
}

# ---------------------------------------------------------------------------
# Ports, start, readiness.
# ---------------------------------------------------------------------------

# Print N distinct free TCP ports on 127.0.0.1 (all sockets are held open
# together so that the kernel cannot hand out the same port twice).
free_ports() { # free_ports N
  "$PYTHON" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Start a command in the background in its own session (so a Ctrl-C or a
# closed terminal in the caller does not take it down), with stdin from
# /dev/null and stdout+stderr into LOG. Without the redirections
# `$(tests/emulators.sh up)` would wait for the emulators to close its pipe.
# Sets STARTED_PID. No job control in this script, so the background child
# is never a process-group leader and setsid execs in place: $! is the
# emulator's own pid.
start_bg() { # start_bg LOG CMD...
  local logfile="$1"; shift
  if command -v setsid >/dev/null 2>&1; then
    setsid "$@" </dev/null >"$logfile" 2>&1 &
  else
    nohup "$@" </dev/null >"$logfile" 2>&1 &
  fi
  STARTED_PID=$!
}

# Kinesis answers a JSON 1.1 ListStreams with any well-formed JSON document.
probe_kinesis() { # probe_kinesis PORT
  local body
  body="$(curl -sS --max-time 3 -X POST "http://$LOOPBACK:$1/" \
    -H 'X-Amz-Target: Kinesis_20131202.ListStreams' \
    -H 'Content-Type: application/x-amz-json-1.1' \
    -H 'X-Amz-Date: 20240101T000000Z' -H "$(sigv4_auth kinesis)" \
    -d '{}' 2>/dev/null)" || return 1
  "$PYTHON" -c 'import json, sys; json.loads(sys.argv[1])' "$body" 2>/dev/null
}

# moto_server answers its dashboard once Flask is up.
probe_moto() { # probe_moto PORT
  curl -fsS --max-time 3 -o /dev/null "http://$LOOPBACK:$1/moto-api/" 2>/dev/null
}

# EMR through moto: ListClusters (JSON 1.1) must return a "Clusters" list.
probe_emr() { # probe_emr PORT
  local body
  body="$(curl -sS --max-time 10 -X POST "http://$LOOPBACK:$1/" \
    -H 'X-Amz-Target: ElasticMapReduce.ListClusters' \
    -H 'Content-Type: application/x-amz-json-1.1' \
    -H 'X-Amz-Date: 20240101T000000Z' -H "$(sigv4_auth elasticmapreduce)" \
    -d '{}' 2>/dev/null)" || return 1
  "$PYTHON" -c 'import json, sys; assert isinstance(json.loads(sys.argv[1])["Clusters"], list)' "$body" 2>/dev/null
}

# S3 through moto: ListBuckets (unsigned GET /) returns the XML bucket list.
probe_s3() { # probe_s3 PORT
  curl -fsS --max-time 10 "http://$LOOPBACK:$1/" 2>/dev/null | grep -q 'ListAllMyBucketsResult'
}

# Poll PROBE until it succeeds; fail early if the process dies, and fail with
# the log tail after START_TIMEOUT seconds.
wait_ready() { # wait_ready NAME PID MARKER LOG PROBE PORT
  local name="$1" pid="$2" marker="$3" logfile="$4" probe="$5" port="$6"
  local deadline=$((SECONDS + START_TIMEOUT))
  while :; do
    # Only "alive" here: right after the spawn, /proc/PID/cmdline may still show the shell
    # that is about to exec the emulator, so the marker check would race.
    if ! pid_alive "$pid"; then
      log_tail "$name" "$logfile"
      die "$name (pid $pid) exited before answering on $LOOPBACK:$port"
    fi
    if "$probe" "$port"; then
      return 0
    fi
    if ((SECONDS >= deadline)); then
      log_tail "$name" "$logfile"
      die "$name (pid $pid) did not answer on $LOOPBACK:$port within ${START_TIMEOUT}s"
    fi
    sleep 0.2
  done
}

# Double-check with ss that every listening socket of PID is on loopback, and
# that it listens on each expected port.
check_loopback() { # check_loopback NAME PID PORT...
  local name="$1" pid="$2"; shift 2
  if ! command -v ss >/dev/null 2>&1; then
    log "ss not found (iproute2); skipping the loopback double-check for $name"
    return 0
  fi
  local addrs addr port
  addrs="$(ss -ltnp 2>/dev/null | awk -v p="pid=$pid," 'NR > 1 && index($0, p) { print $4 }')"
  if [[ -z "$addrs" ]]; then
    log "ss shows no listening socket for $name pid $pid (no permission?); skipping the double-check"
    return 0
  fi
  for addr in $addrs; do
    case "$addr" in
      127.*:* | "[::1]:"* | "[::ffff:127."*) ;;
      *) die "$name (pid $pid) listens on $addr, beyond loopback; refusing to run" ;;
    esac
  done
  for port in "$@"; do
    grep -qx "$LOOPBACK:$port" <<<"$addrs" || die "$name (pid $pid) is not listening on $LOOPBACK:$port (ss: $(tr '\n' ' ' <<<"$addrs"))"
  done
  log "$name pid $pid listens on: $(tr '\n' ' ' <<<"$addrs")"
}

# ---------------------------------------------------------------------------
# State file: `export NAME=value` lines, values shell-quoted.
# ---------------------------------------------------------------------------
write_state() { # write_state KPORT MPORT KPID MPID KLOG MLOG
  local tmp="$STATE_FILE.tmp.$$"
  mkdir -p "$(dirname "$STATE_FILE")"
  {
    printf '# Written by tests/emulators.sh up on %s; source it, or run tests/emulators.sh env.\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf 'export %s=%q\n' \
      FLUX_TEST_KINESIS_ENDPOINT "http://$LOOPBACK:$1" \
      FLUX_TEST_S3_ENDPOINT "http://$LOOPBACK:$2" \
      FLUX_TEST_EMR_ENDPOINT "http://$LOOPBACK:$2" \
      FLUX_EMULATORS_KINESIS_PID "$3" \
      FLUX_EMULATORS_KINESIS_LOG "$5" \
      FLUX_EMULATORS_MOTO_PID "$4" \
      FLUX_EMULATORS_MOTO_LOG "$6" \
      FLUX_EMULATORS_STATE "$STATE_FILE" \
      FLUX_TEST_DUCKDB_PYTHON "$DUCKDB_VENV/bin/python" \
      FLUX_TEST_DUCKDB_S3_PYTHON "$DUCKDB_S3_VENV/bin/python" \
      FLUX_TEST_DUCKDB_S3_EXTENSIONS "$DUCKDB_S3_VENV/extensions" \
      AWS_ACCESS_KEY_ID test \
      AWS_SECRET_ACCESS_KEY test \
      AWS_REGION us-east-1 \
      AWS_ENDPOINT_URL_KINESIS "http://$LOOPBACK:$1" \
      AWS_ENDPOINT_URL_S3 "http://$LOOPBACK:$2" \
      AWS_ENDPOINT_URL_EMR "http://$LOOPBACK:$2" \
      AWS_EC2_METADATA_DISABLED true
  } >"$tmp"
  mv -f "$tmp" "$STATE_FILE"
}

# Load the state file into this shell (empty values if there is none).
load_state() {
  FLUX_TEST_KINESIS_ENDPOINT="" FLUX_TEST_S3_ENDPOINT="" FLUX_TEST_EMR_ENDPOINT=""
  FLUX_EMULATORS_KINESIS_PID="" FLUX_EMULATORS_KINESIS_LOG=""
  FLUX_EMULATORS_MOTO_PID="" FLUX_EMULATORS_MOTO_LOG=""
  [[ -f "$STATE_FILE" ]] || return 1
  # shellcheck source=/dev/null
  . "$STATE_FILE"
}

print_exports() {
  grep '^export ' "$STATE_FILE"
}

kinesis_alive() { pid_matches "$FLUX_EMULATORS_KINESIS_PID" "kinesis-local"; }
moto_alive() { pid_matches "$FLUX_EMULATORS_MOTO_PID" "moto_server"; }

# Port of an http://127.0.0.1:PORT endpoint.
endpoint_port() { printf '%s\n' "${1##*:}"; }

# True if the state file describes a running, answering set of emulators.
running_and_healthy() {
  load_state || return 1
  kinesis_alive || return 1
  moto_alive || return 1
  probe_kinesis "$(endpoint_port "$FLUX_TEST_KINESIS_ENDPOINT")" || return 1
  probe_moto "$(endpoint_port "$FLUX_TEST_S3_ENDPOINT")" || return 1
}

# ---------------------------------------------------------------------------
# Stop one process: TERM, up to 10 s grace, then KILL. Never touches a pid
# whose command line is not the expected emulator.
# ---------------------------------------------------------------------------
stop_pid() { # stop_pid NAME PID MARKER
  local name="$1" pid="$2" marker="$3" i
  if [[ -z "$pid" ]]; then
    return 0
  fi
  if ! pid_matches "$pid" "$marker"; then
    log "$name (pid $pid) is not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    pid_matches "$pid" "$marker" || { log "stopped $name (pid $pid)"; return 0; }
    sleep 0.2
  done
  log "$name (pid $pid) ignored SIGTERM for 10s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------------------
# Commands.
# ---------------------------------------------------------------------------
cmd_install() {
  with_install_lock install_all
  log "installed: kinesis-local@$KINESIS_LOCAL_VERSION ($NPM_PREFIX), ${MOTO_REQUIREMENTS[*]} ($VENV), duckdb==$DUCKDB_VERSION ($DUCKDB_VENV), duckdb==$DUCKDB_S3_VERSION with httpfs and aws ($DUCKDB_S3_VENV)"
}

cmd_duckdb() {
  with_install_lock install_duckdb
  printf 'export FLUX_TEST_DUCKDB_PYTHON=%q\n' "$DUCKDB_VENV/bin/python"
}

# Pids started by the current `up`; killed again if `up` fails half-way.
UP_PIDS=()
UP_DONE=0
cleanup_failed_up() {
  local pid i
  if ((UP_DONE == 0)) && ((${#UP_PIDS[@]} > 0)); then
    for pid in "${UP_PIDS[@]}"; do
      kill -TERM "$pid" 2>/dev/null || true
    done
    # Give them up to 5 s to go, then SIGKILL whatever is left.
    for pid in "${UP_PIDS[@]}"; do
      for ((i = 0; i < 25; i++)); do
        pid_matches "$pid" "" || break
        sleep 0.2
      done
      if pid_matches "$pid" ""; then
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done
    log "startup failed; stopped pid(s) ${UP_PIDS[*]}"
  fi
}

cmd_up() {
  if running_and_healthy; then
    log "already running (state $STATE_FILE); reusing it. Run 'down' first for a fresh set."
    with_install_lock install_duckdb
    print_exports
    # A set started by an older version of this script lacks the endpoint lines the binary reads.
    grep -q '^export AWS_ENDPOINT_URL_KINESIS=' "$STATE_FILE" \
      || printf 'export %s=%q\n' AWS_ENDPOINT_URL_KINESIS "$FLUX_TEST_KINESIS_ENDPOINT" \
        AWS_ENDPOINT_URL_S3 "$FLUX_TEST_S3_ENDPOINT" AWS_ENDPOINT_URL_EMR "$FLUX_TEST_EMR_ENDPOINT" \
        AWS_EC2_METADATA_DISABLED true
    # A set started by an older version of this script has no DuckDB line in its state.
    grep -q '^export FLUX_TEST_DUCKDB_PYTHON=' "$STATE_FILE" \
      || printf 'export FLUX_TEST_DUCKDB_PYTHON=%q\n' "$DUCKDB_VENV/bin/python"
    with_install_lock install_duckdb_s3
    grep -q '^export FLUX_TEST_DUCKDB_S3_PYTHON=' "$STATE_FILE" \
      || printf 'export %s=%q\n' FLUX_TEST_DUCKDB_S3_PYTHON "$DUCKDB_S3_VENV/bin/python" \
        FLUX_TEST_DUCKDB_S3_EXTENSIONS "$DUCKDB_S3_VENV/extensions"
    return 0
  fi
  # A stale or half-dead set from an earlier run: clear it first.
  if [[ -f "$STATE_FILE" ]]; then
    cmd_down
  fi

  with_install_lock install_all
  write_preload
  mkdir -p "$LOG_DIR"
  # Logs are named by port, so they pile up: drop those older than a week.
  find "$LOG_DIR" -maxdepth 1 -name '*.log' -type f -mtime +7 -delete 2>/dev/null || true

  local kport ktls_port mport
  read -r kport ktls_port mport <<<"$(free_ports 3)"
  [[ -n "$mport" ]] || die "could not pick free loopback ports"
  local klog="$LOG_DIR/kinesis-local-$kport.log"
  local mlog="$LOG_DIR/moto-$mport.log"
  local cert
  cert="$(kinesis_cert_path)" || die "no server.json inside $KINESIS_PKG"

  trap cleanup_failed_up EXIT

  # SHARD_LIMIT: the account's shard limit (kinesis-local's default is 50). The
  # suite's tests share one emulator and run concurrently within each test binary,
  # and splitting a shard needs room for its children.
  # kinesis-local: plain HTTP port for the tests; the TLS port cannot be
  # switched off, so it gets a free loopback port as well. The other
  # variables are set explicitly so that the caller's environment (e.g. a
  # LOG_LEVEL or AWS_REGION of its own) cannot change the emulator.
  log "starting kinesis-local@$KINESIS_LOCAL_VERSION on $LOOPBACK:$kport (tls $ktls_port), log $klog"
  start_bg "$klog" env -u INITIALIZE_STREAMS \
    KINESIS_MOCK_CERT_PATH="$cert" \
    KINESIS_MOCK_PLAIN_PORT="$kport" \
    KINESIS_MOCK_TLS_PORT="$ktls_port" \
    LOG_LEVEL="${FLUX_KINESIS_LOG_LEVEL:-INFO}" \
    AWS_REGION=us-east-1 \
    SHARD_LIMIT=2000 \
    SHOULD_PERSIST_DATA=false \
    node -r "$PRELOAD_JS" "$KINESIS_PKG/main.js"
  local kpid="$STARTED_PID"
  UP_PIDS+=("$kpid")

  # moto_server: S3 and EMR (and any other moto service) on one port.
  log "starting moto_server $MOTO_VERSION on $LOOPBACK:$mport, log $mlog"
  start_bg "$mlog" "$VENV/bin/moto_server" -H "$LOOPBACK" -p "$mport"
  local mpid="$STARTED_PID"
  UP_PIDS+=("$mpid")

  # Both start in parallel; wait for each in turn.
  wait_ready kinesis-local "$kpid" kinesis-local "$klog" probe_kinesis "$kport"
  check_loopback kinesis-local "$kpid" "$kport" "$ktls_port"
  wait_ready moto_server "$mpid" moto_server "$mlog" probe_moto "$mport"
  check_loopback moto_server "$mpid" "$mport"
  probe_s3 "$mport" || { log_tail moto_server "$mlog"; die "moto_server answers but S3 ListBuckets fails"; }
  probe_emr "$mport" || { log_tail moto_server "$mlog"; die "moto_server answers but EMR ListClusters fails"; }

  write_state "$kport" "$mport" "$kpid" "$mpid" "$klog" "$mlog"
  UP_DONE=1
  trap - EXIT
  log "up: kinesis http://$LOOPBACK:$kport (pid $kpid), s3+emr http://$LOOPBACK:$mport (pid $mpid); state $STATE_FILE"
  print_exports
}

cmd_down() {
  if ! load_state; then
    log "nothing to stop (no state file $STATE_FILE)"
    return 0
  fi
  stop_pid kinesis-local "$FLUX_EMULATORS_KINESIS_PID" kinesis-local
  stop_pid moto_server "$FLUX_EMULATORS_MOTO_PID" moto_server
  rm -f "$STATE_FILE"
}

cmd_status() {
  if ! load_state; then
    echo "emulators: not started (no state file $STATE_FILE)"
    return 1
  fi
  local ok=0 kstate mstate
  if kinesis_alive && probe_kinesis "$(endpoint_port "$FLUX_TEST_KINESIS_ENDPOINT")"; then
    kstate="running"
  elif kinesis_alive; then
    kstate="running but NOT answering"; ok=1
  else
    kstate="NOT running"; ok=1
  fi
  if moto_alive && probe_moto "$(endpoint_port "$FLUX_TEST_S3_ENDPOINT")"; then
    mstate="running"
  elif moto_alive; then
    mstate="running but NOT answering"; ok=1
  else
    mstate="NOT running"; ok=1
  fi
  echo "kinesis-local $KINESIS_LOCAL_VERSION: $kstate, pid $FLUX_EMULATORS_KINESIS_PID, $FLUX_TEST_KINESIS_ENDPOINT, log $FLUX_EMULATORS_KINESIS_LOG"
  echo "moto_server $MOTO_VERSION (s3, emr): $mstate, pid $FLUX_EMULATORS_MOTO_PID, s3 $FLUX_TEST_S3_ENDPOINT, emr $FLUX_TEST_EMR_ENDPOINT, log $FLUX_EMULATORS_MOTO_LOG"
  echo "state file: $STATE_FILE"
  return "$ok"
}

cmd_env() {
  running_and_healthy || die "emulators are not running (see: $0 status)"
  print_exports
}

usage() {
  sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0" >&2
}

main() {
  local cmd="${1:-}"
  case "$cmd" in
    install) cmd_install ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    duckdb) cmd_duckdb ;;
    -h | --help | help) usage ;;
    *) usage; exit 2 ;;
  esac
}

main "$@"
