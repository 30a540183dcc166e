#!/usr/bin/env bash
# Benchmark: a templated-style replay (archive → compact → annotate → kinesis sink) into
# kinesis-local, with the release binary, at a configured rate and at the default rate. Prints the
# records replayed, wall time, the rate achieved against the configured limit, the floor the
# limit sets (busiest target shard / rate, after one second of burst) and peak RSS. Asserts
# nothing about time (the emulator and the machine set the pace); checks every winner arrived.
#
#   tests/bench/replay.sh [RECORDS] [KEYS] [SHARDS] [RATE]    (defaults 20000 5000 4 100)
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
records=${1:-20000}
keys=${2:-5000}
shards=${3:-4}
rate=${4:-100}
export FLUX_CACHE="${FLUX_CACHE:-$HOME/.cache/flux-engine}"
export FLUX_EMULATORS_STATE="$FLUX_CACHE/bench-emulators.env"
env_lines=$(tests/emulators.sh up) && eval "$env_lines"
work=$(mktemp -d)
trap 'tests/emulators.sh down >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
cargo build -q --release -p flux-engine
bin="${CARGO_TARGET_DIR:-$repo/target}/release/flux-engine"
py="$FLUX_CACHE/venv/bin/python"   # moto's virtualenv has boto3

python3 tests/fixtures/gen_archive.py --records "$records" --shards 4 --keys "$keys" --seed 7 --out "$work/data" >/dev/null
winners=$(python3 -c "import json; print(json.load(open('$work/data/manifest.json'))['expected']['compaction_distinct_customer_id'])")

stream_for() { # name → creates a stream with $shards shards
  "$py" - "$FLUX_TEST_KINESIS_ENDPOINT" "$1" "$shards" <<'PY'
import sys, time, boto3
url, stream, shards = sys.argv[1], sys.argv[2], int(sys.argv[3])
k = boto3.client("kinesis", endpoint_url=url, region_name="us-east-1",
                 aws_access_key_id="test", aws_secret_access_key="test")
k.create_stream(StreamName=stream, ShardCount=shards)
while k.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
    time.sleep(0.1)
PY
}

run() { # name, rate line
  local stream="replay-bench-$$-$1"
  stream_for "$stream"
  cat > "$work/$1.toml" <<TOML
[sources.archive]
type = "archive"
url = "$work/data/archive"
stream = "orders"
order = "interleaved"

[transforms.latest]
type = "compact"
inputs = ["archive"]
key = "\$.data.customer_id"

[transforms.mark]
type = "annotate"
inputs = ["latest"]
replay = { id = "BENCH-1", mode = "overwrite" }

[sinks.out]
type = "kinesis"
inputs = ["mark"]
stream = "$stream"
replay_id = "BENCH-1"
mode = "overwrite"
$2
TOML
  AWS_ENDPOINT_URL_KINESIS=$FLUX_TEST_KINESIS_ENDPOINT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
  AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true RUST_LOG=warn \
    /usr/bin/time -f '%e %M' -o "$work/$1.time" "$bin" run "$work/$1.toml" --progress off 2> "$work/$1.log" \
    || { cat "$work/$1.log" >&2; exit 1; }
  read -r secs kb < "$work/$1.time"
  line=$(grep '^out: sent ' "$work/$1.log")
  busiest=$(grep -o '^out: shard [^:]*: [0-9]* records' "$work/$1.log" | awk '{print $4}' | sort -n | tail -1)
  python3 - "$1" "$line" "$secs" "$kb" "$winners" "$shards" "$busiest" <<'PY'
import re, sys
name, line, secs, kb, winners, shards, busiest = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
m = re.search(r"sent (\d+) records .* in ([\d.]+)s \((\d+) records/s; limit (\d+) records/s on each of (\d+) shards\); (\d+) PutRecords calls, (\d+) throttled", line)
sent, send_secs, achieved, limit, n_shards, calls, throttled = int(m[1]), float(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6]), int(m[7])
if sent != winners:
    sys.exit(f"{name}: sent {sent} records, expected {winners} (one per key)")
# The limit allows a second's burst per shard, then `limit` per second: the busiest shard sets
# the shortest possible time.
floor = max(0.0, (busiest - limit) / limit)
versus = f"{floor / send_secs:4.0%} of the pace the limit allows (floor {floor:.2f} s)" if floor > 0 else "below one second's burst: no floor"
print(f"  {name:<8} {sent} records in {send_secs:5.2f} s of sending ({secs:5.2f} s in all), {achieved} records/s; "
      f"limit {limit}/s on each of {n_shards} shards, busiest shard {busiest} records: {versus}; "
      f"{calls} PutRecords calls, {throttled} throttled; peak RSS {kb/1024:5.1f} MB")
PY
}
echo "replay benchmark: $records archived records, $winners keys, $shards target shards, kinesis-local"
run limited "records_per_second_per_shard = $rate"
run default ""
