#!/usr/bin/env bash
# Benchmark: the `kinesis` source's own cost (issue #15 goal 3). A loopback replayer
# (engine/examples/kinesis_replayer.rs) serves pre-serialised GetRecords answers of ~0.5 KB JSON
# orders over SHARDS shards as fast as asked; `flux-engine run` reads them (start =
# "trim_horizon", stop = "caught_up") into the `archive` sink in a local folder, and into a `file`
# sink writing envelopes to /dev/null (the source and the envelope encoding without gzip and
# objects). Prints records/s, MB/s of payload, CPU seconds per GB of payload of the flux-engine
# process alone (its rusage, not the replayer's), MB/s of payload per core and peak RSS.
# Asserts nothing about time (shared, noisy machines): it prints figures, medians of RUNS.
#
# The source paces each shard to Kinesis' read limit of 2 MB/s, so the wall-clock rate is at most
# SHARDS × 2 MB/s; the CPU per GB is what the engine costs whatever the pace.
#
#   tests/bench/kinesis-source.sh [RECORDS] [SHARDS] [RUNS]   (defaults 300000 "8 50" 3)
#
# FLUX_BENCH_BIN=path runs that binary instead of building the release one (to compare two);
# FLUX_BENCH_REPLAYER=path likewise for the replayer. Only loopback is talked to.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
records=${1:-300000}
shard_counts=${2:-8 50}
runs=${3:-3}
work=$(mktemp -d)
replayer_pid=""
stop_replayer() {
  if [[ -n $replayer_pid ]]; then
    kill -INT "$replayer_pid" 2>/dev/null || true
    wait "$replayer_pid" 2>/dev/null || true
    replayer_pid=""
  fi
}
trap 'stop_replayer; rm -rf "$work"' EXIT
target="${CARGO_TARGET_DIR:-$repo/target}/release"
if [[ -z "${FLUX_BENCH_BIN:-}" || -z "${FLUX_BENCH_REPLAYER:-}" ]]; then
  cargo build -q --release --locked -p flux-engine --bin flux-engine --example kinesis_replayer
fi
bin=${FLUX_BENCH_BIN:-$target/flux-engine}
replayer=${FLUX_BENCH_REPLAYER:-$target/examples/kinesis_replayer}

# Nothing but the replayer: dummy credentials, no endpoint from the environment, no IMDS.
unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_KINESIS AWS_ENDPOINT_URL_S3 AWS_PROFILE AWS_SESSION_TOKEN
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

# The payloads: ~0.5 KB JSON orders with a note of varied words, as archive-write.sh makes them
# (one letter repeated would flatter gzip).
payload_bytes=$(python3 - "$work/in.jsonl" "$records" <<'PY'
import json, random, string, sys
path, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
words = ["".join(rnd.choice(string.ascii_lowercase) for _ in range(rnd.randint(2, 9))) for _ in range(3000)]
total = 0
with open(path, "w", encoding="utf-8") as f:
    for i in range(n):
        c = "customer-%d" % rnd.randint(1, 5000)
        doc = {"order_id": "o-%d" % i, "customer_id": c, "status": rnd.choice(["paid", "shipped", "cancelled"]),
               "total": round(rnd.random() * 300, 2), "items": [{"sku": "SKU-%d" % rnd.randint(1, 999), "qty": 1}] * 3,
               "note": "Zoë ✓ " + " ".join(rnd.choice(words) for _ in range(rnd.randint(30, 60)))}
        line = json.dumps(doc, ensure_ascii=False)
        total += len(line.encode())
        f.write(line + "\n")
print(total)
PY
)

start_replayer() { # shards
  "$replayer" --input "$work/in.jsonl" --shards "$1" > "$work/replayer.out" 2> "$work/replayer.log" &
  replayer_pid=$!
  for _ in $(seq 600); do
    grep -q '^listening on ' "$work/replayer.out" 2>/dev/null && break
    kill -0 "$replayer_pid" 2>/dev/null || { cat "$work/replayer.log" >&2; exit 1; }
    sleep 0.1
  done
  endpoint=$(sed -n 's/^listening on //p' "$work/replayer.out")
  [[ -n $endpoint ]] || { echo "the replayer did not start" >&2; exit 1; }
}

one_run() { # name sink-toml → prints "secs cpu_secs peak_kb"
  cat > "$work/$1.toml" <<TOML
[sources.stream]
type = "kinesis"
stream = "bench"
start = "trim_horizon"
stop = "caught_up"
aws = { endpoint = "$endpoint", region = "us-east-1" }

$2
TOML
  /usr/bin/time -f '%e %U %S %M' -o "$work/$1.time" "$bin" run "$work/$1.toml" --progress off \
    --summary-json "$work/$1.summary.json" 2> "$work/$1.log" >/dev/null \
    || { cat "$work/$1.log" >&2; exit 1; }
  read -r secs user sys kb < "$work/$1.time"
  python3 - "$work/$1.summary.json" "$records" "$secs" "$user" "$sys" "$kb" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
n, secs, cpu, kb = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]) + float(sys.argv[5]), int(sys.argv[6])
sink = next(st for st in s["stages"] if st["id"] == "out")
assert sink["records_in"] == n, f"the sink took {sink['records_in']} of {n} records"
print(secs, cpu, kb)
PY
}

median() { python3 -c "import statistics,sys; print(statistics.median(map(float, sys.argv[1:])))" "$@"; }

report() { # shards name sink-toml
  local secs=() cpus=() kbs=()
  for _ in $(seq "$runs"); do
    rm -rf "$work/archive"
    read -r s c k < <(one_run "$2" "$3")
    secs+=("$s"); cpus+=("$c"); kbs+=("$k")
  done
  python3 - "$1" "$2" "$(median "${secs[@]}")" "$(median "${cpus[@]}")" "$(median "${kbs[@]}")" "$records" "$payload_bytes" "$runs" <<'PY'
import sys
shards, name, secs, cpu, kb, n, b, runs = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), sys.argv[8]
print(f"  {shards:>3} shards {name:<8} {secs:6.2f} s  {n / secs:8.0f} records/s  {b / secs / 1e6:6.1f} MB/s of payload  "
      f"{cpu / (b / 1e9):5.1f} CPU s per GB  = {b / cpu / 1e6:6.1f} MB/s per core  peak RSS {kb / 1024:5.1f} MB  (medians of {runs})")
PY
}

echo "kinesis-source benchmark: $records records, $((payload_bytes / 1000000)) MB of payload (~0.5 KB JSON), loopback replayer → kinesis source (paced to 2 MB/s per shard after its first call) → sink, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for shards in $shard_counts; do
  start_replayer "$shards"
  report "$shards" archive "[sinks.out]
type = \"archive\"
inputs = [\"stream\"]
url = \"file://$work/archive\""
  report "$shards" devnull "[sinks.out]
type = \"file\"
inputs = [\"stream\"]
path = \"/dev/null\""
  stop_replayer
done
echo "  (archive: gzip level 6 into a local folder; devnull: a file sink writing envelopes to /dev/null; load now $(cut -d' ' -f1-3 /proc/loadavg))"
