#!/usr/bin/env bash
# Benchmark: archive a Kinesis stream (kinesis-local) into a local folder and into S3 (moto),
# with the release binary. Prints records/s, MB/s (per shard too), peak RSS, and how much of the
# run the source spent waiting on the emulator. Asserts nothing about time: the emulators, not
# the engine, set the pace here (kinesis-local serves GetRecords slowly; see the issue notes).
#
#   tests/bench/archive.sh [RECORDS] [SHARDS]     (defaults 20000 and 4)
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
records=${1:-20000}
shards=${2:-4}
export FLUX_CACHE="${FLUX_CACHE:-$HOME/.cache/flux-engine}"
export FLUX_EMULATORS_STATE="$FLUX_CACHE/bench-emulators.env"
env_lines=$(tests/emulators.sh up) && eval "$env_lines"
trap 'tests/emulators.sh down >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
work=$(mktemp -d)
cargo build -q --release -p flux-engine
bin="${CARGO_TARGET_DIR:-$repo/target}/release/flux-engine"
py="$FLUX_CACHE/venv/bin/python"   # moto's virtualenv has boto3
stream="bench-$$"
bucket="bench-$$"

"$py" - "$FLUX_TEST_KINESIS_ENDPOINT" "$FLUX_TEST_S3_ENDPOINT" "$stream" "$bucket" "$records" "$shards" <<'PY' >&2
import json, random, sys, time, boto3
kin_url, s3_url, stream, bucket, n, shards = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
kw = dict(region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
k = boto3.client("kinesis", endpoint_url=kin_url, **kw)
boto3.client("s3", endpoint_url=s3_url, **kw).create_bucket(Bucket=bucket)
k.create_stream(StreamName=stream, ShardCount=shards)
while k.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
    time.sleep(0.1)
rnd = random.Random(42)
t = time.time()
batch = []
for i in range(n):
    c = "customer-%d" % rnd.randint(1, 5000)
    doc = {"order_id": "o-%d" % i, "customer_id": c, "status": rnd.choice(["paid", "shipped", "cancelled"]),
           "total": round(rnd.random() * 300, 2), "items": [{"sku": "SKU-%d" % rnd.randint(1, 999), "qty": 1}] * 3,
           "note": "Zoë ✓ " + "x" * rnd.randint(200, 400)}
    batch.append({"Data": json.dumps(doc, ensure_ascii=False).encode(), "PartitionKey": c})
    if len(batch) == 500 or i == n - 1:
        out = k.put_records(StreamName=stream, Records=batch)
        assert out["FailedRecordCount"] == 0
        batch = []
print("put %d records in %.1f s" % (n, time.time() - t))
PY

run() { # name url
  cat > "$work/$1.toml" <<TOML
[sources.stream]
type = "kinesis"
stream = "$stream"
start = "trim_horizon"
poll_interval = "200ms"
idle_interval = "200ms"

[sinks.archive]
type = "archive"
inputs = ["stream"]
url = "$2"
TOML
  AWS_ENDPOINT_URL_KINESIS=$FLUX_TEST_KINESIS_ENDPOINT AWS_ENDPOINT_URL_S3=$FLUX_TEST_S3_ENDPOINT \
  AWS_EC2_METADATA_DISABLED=true RUST_LOG=warn,flux_stages::source::kinesis=info \
    /usr/bin/time -f '%e %M' -o "$work/$1.time" "$bin" run "$work/$1.toml" --progress off 2> "$work/$1.log" \
    || { cat "$work/$1.log" >&2; exit 1; }
  read -r secs kb < "$work/$1.time"
  bytes=$(awk '$1 == "sink" && $2 == "archive" { print $6 $7 }' "$work/$1.log")
  got=$(awk '$1 == "sink" && $2 == "archive" { print $4 }' "$work/$1.log")
  [[ "$got" == "$records" ]] || { echo "$1: archived $got of $records" >&2; cat "$work/$1.log" >&2; exit 1; }
  waiting=$(grep -o 'waiting on Kinesis of [0-9.]*s of shard reading ([0-9]*%)' "$work/$1.log" | grep -o '([0-9]*%)' | tr -d '()' || echo "?")
  calls=$(grep -o 'GetRecords: [0-9]* calls' "$work/$1.log" | grep -o '[0-9]*' || echo "?")
  python3 - "$1" "$records" "$shards" "$secs" "$kb" "$bytes" "$waiting" "$calls" <<'PY'
import sys
name, n, shards, secs, kb, size, waiting, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7], sys.argv[8]
units = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
num = float(''.join(c for c in size if c.isdigit() or c == '.'))
unit = ''.join(c for c in size if c.isalpha())
mb = num * units[unit] / 1e6
print(f"  {name:<6} {secs:6.2f} s  {n/secs:8.0f} records/s ({n/secs/shards:6.0f} per shard)  {mb/secs:6.2f} MB/s ({mb/secs/shards:5.2f} per shard)  peak RSS {kb/1024:5.1f} MB  waiting on the emulator {waiting} of shard-reading time ({calls} GetRecords calls)")
PY
}
echo "archive benchmark: $records records (~0.5 KB JSON) on $shards shards, kinesis-local → archive"
run local "file://$work/archive"
run s3 "s3://$bucket/archive"
# The floor set by the emulator: one GetRecords pass over every shard by the SDK alone is what
# the source cannot go below; the engine's own CPU time is the rest.
echo "  (waiting = time inside GetRecords calls / time the shard readers ran, summed over shards; the rest is pacing (≤5 calls/s/shard) and handing records on)"
