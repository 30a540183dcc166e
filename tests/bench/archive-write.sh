#!/usr/bin/env bash
# Benchmark: the archive sink's write path (issue #15 goal 2). A file of JSON payloads spread
# over SHARDS synthetic shards (the file source's `data` format) → the `archive` sink, into a
# local folder and into S3 (moto), with the release binary. Prints MB/s of envelopes written
# (the uncompressed bytes the sink gzips), CPU seconds per GB, peak RSS, and the same bytes
# gzipped by one core of zlib (Python's, the C library) at the same level, with the ratio.
# Asserts nothing about time (shared, noisy machines): it prints figures, medians of RUNS.
#
#   tests/bench/archive-write.sh [RECORDS] [SHARDS] [LEVEL] [RUNS]   (defaults 400000 8 6 3)
#
# FLUX_BENCH_BIN=path runs that binary instead of building the release one (to compare two).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
records=${1:-400000}
shards=${2:-8}
level=${3:-6}
runs=${4:-3}
export FLUX_CACHE="${FLUX_CACHE:-$HOME/.cache/flux-engine}"
export FLUX_EMULATORS_STATE="$FLUX_CACHE/bench-emulators.env"
env_lines=$(tests/emulators.sh up) && eval "$env_lines"
work=$(mktemp -d)
trap 'tests/emulators.sh down >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
if [[ -n "${FLUX_BENCH_BIN:-}" ]]; then
  bin=$FLUX_BENCH_BIN
else
  cargo build -q --release --locked -p flux-engine
  bin="${CARGO_TARGET_DIR:-$repo/target}/release/flux-engine"
fi
py="$FLUX_CACHE/venv/bin/python"   # moto's virtualenv has boto3
bucket="bench-$$"

# The input: ~0.5 KB JSON orders, as tests/bench/archive.sh puts into Kinesis, but with a note
# of words (not one letter repeated, which zlib compresses far faster than real payloads).
python3 - "$work/in.jsonl" "$records" <<'PY'
import json, random, string, sys
path, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
words = ["".join(rnd.choice(string.ascii_lowercase) for _ in range(rnd.randint(2, 9))) for _ in range(3000)]
with open(path, "w", encoding="utf-8") as f:
    for i in range(n):
        c = "customer-%d" % rnd.randint(1, 5000)
        doc = {"order_id": "o-%d" % i, "customer_id": c, "status": rnd.choice(["paid", "shipped", "cancelled"]),
               "total": round(rnd.random() * 300, 2), "items": [{"sku": "SKU-%d" % rnd.randint(1, 999), "qty": 1}] * 3,
               "note": "Zoë ✓ " + " ".join(rnd.choice(words) for _ in range(rnd.randint(30, 60)))}
        f.write(json.dumps(doc, ensure_ascii=False) + "\n")
PY
"$py" -c "import boto3,sys; boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test').create_bucket(Bucket=sys.argv[2])" "$FLUX_TEST_S3_ENDPOINT" "$bucket"

one_run() { # name url → prints "secs cpu_secs peak_kb envelope_bytes"
  cat > "$work/$1.toml" <<TOML
[sources.orders]
type = "file"
path = "$work/in.jsonl"
stream = "orders"
partition_key = "\$.customer_id"
shards = $shards

[sinks.archive]
type = "archive"
inputs = ["orders"]
url = "$2"
gzip_level = $level
max_bytes = "64MiB"
aws = { endpoint = "$FLUX_TEST_S3_ENDPOINT", region = "us-east-1" }
TOML
  /usr/bin/time -f '%e %U %S %M' -o "$work/$1.time" "$bin" run "$work/$1.toml" --progress off \
    --summary-json "$work/$1.summary.json" 2> "$work/$1.log" >/dev/null \
    || { cat "$work/$1.log" >&2; exit 1; }
  read -r secs user sys kb < "$work/$1.time"
  python3 - "$work/$1.summary.json" "$records" "$secs" "$user" "$sys" "$kb" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
n, secs, cpu, kb = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]) + float(sys.argv[5]), int(sys.argv[6])
sink = next(st for st in s["stages"] if st["id"] == "archive")
assert sink["records_in"] == n, f"archived {sink['records_in']} of {n}"
print(secs, cpu, kb, sink["bytes_in"])
PY
}

median() { python3 -c "import statistics,sys; print(statistics.median(map(float, sys.argv[1:])))" "$@"; }

# One core of zlib at the same level, on the envelope lines the sink wrote (read back from the
# local archive of the first run).
zlib_mbs=""
env_bytes=0
gz_bytes=0
report() { # name url
  local secs=() cpus=() kbs=()
  for i in $(seq "$runs"); do
    [[ $2 == file://* ]] && rm -rf "${2#file://}"
    [[ $2 == s3://* ]] && "$py" -c "import boto3,sys; b=boto3.resource('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test').Bucket(sys.argv[2]); b.objects.all().delete()" "$FLUX_TEST_S3_ENDPOINT" "$bucket"
    read -r s c k b < <(one_run "$1" "$2")
    secs+=("$s"); cpus+=("$c"); kbs+=("$k")
    if [[ -z $zlib_mbs && $2 == file://* ]]; then
      zlib_mbs=$(python3 - "${2#file://}" "$level" <<'PY'
import gzip, pathlib, sys, time, zlib
root, level = pathlib.Path(sys.argv[1]), int(sys.argv[2])
objects = sorted(root.glob("stream=*/**/*.json.gz"))
raw = b"".join(gzip.decompress(p.read_bytes()) for p in objects)
gz_bytes = sum(p.stat().st_size for p in objects)
best = None
for _ in range(3):
    t = time.process_time()
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    c.compress(raw); c.flush()
    d = time.process_time() - t
    best = d if best is None else min(best, d)
print(len(raw) / best / 1e6, len(raw), gz_bytes)
PY
)
      read -r zlib_mbs env_bytes gz_bytes <<< "$zlib_mbs"
    fi
  done
  python3 - "$1" "$(median "${secs[@]}")" "$(median "${cpus[@]}")" "$(median "${kbs[@]}")" "$env_bytes" "$zlib_mbs" "$runs" <<'PY'
import sys
name, secs, cpu, kb, b, zlib_mbs, runs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), sys.argv[7]
mbs = b / secs / 1e6
print(f"  {name:<6} {secs:6.2f} s  {mbs:7.1f} MB/s of envelopes  {cpu / (b / 1e9):6.1f} CPU s per GB  peak RSS {kb / 1024:5.1f} MB  "
      f"= {mbs / zlib_mbs:4.2f}x one core of zlib level (medians of {runs})")
PY
}
echo "archive-write benchmark: $records records (~0.5 KB JSON) on $shards shards, file → archive, gzip level $level, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
report local "file://$work/archive"
echo "  one core of zlib level $level on the same envelope bytes: $(printf '%.1f' "$zlib_mbs") MB/s; objects: $((gz_bytes / 1000000)) MB for $((env_bytes / 1000000)) MB of envelopes ($((100 * gz_bytes / env_bytes))%)"
report s3 "s3://$bucket/archive"
