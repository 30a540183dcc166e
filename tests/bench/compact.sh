#!/usr/bin/env bash
# Benchmark: `archive` source → `compact` (last record per data.customer_id) → `file` sink (gzip)
# over the 2M-record archive of ../shared/bench/gen_archive.py, side by side with DuckDB on one
# thread and with as many threads as cores (duck_job.py compact 1|nproc --variant objects: arg_max
# over the raw line). Runs the engine
# with the default memory limit (512MiB) and with 64MiB (spilling), interleaved with DuckDB.
# Prints figures; checks the record counts; asserts nothing about time.
#
#   tests/bench/compact.sh [RUNS]       (default 3 interleaved runs; medians are reported)
#
# Settings: FLUX_CACHE (default ~/.cache/flux-engine) holds the generated dataset and the DuckDB
# virtualenv; FLUX_SHARED (default ../shared next to the repo) holds gen_archive.py/duck_job.py;
# BENCH_RECORDS (default 2000000).
source "$(dirname "$0")/peer-setup.sh" "${1:-3}"
pipeline() { # $1 = memory_limit line
  cat <<TOML
[sources.archive]
type = "archive"
url = "$data/archive"
stream = "orders"
# compact re-sorts by version, so its input needs no cross-shard order: two shards are read at
# once (one per core) and their batches interleaved, one batch read ahead per shard so the
# source's buffers stay small next to the compaction state (batches of the default 1024 records:
# smaller ones cost a thread wake-up each).
order = "interleaved"
concurrency = 2
prefetch = 1

[transforms.latest]
type = "compact"
inputs = ["archive"]
key = "\$.data.customer_id"
spill_dir = "$work"
$1

[sinks.out]
type = "file"
inputs = ["latest"]
path = "$work/latest.jsonl.gz"
TOML
}
pipeline "" > "$work/default.toml"
pipeline 'memory_limit = "64MiB"' > "$work/spill.toml"

expected=$(python3 -c "import json; print(json.load(open('$data/manifest.json'))['expected']['compaction_distinct_customer_id'])")
raw_mb=$(python3 -c "import json; print(round(json.load(open('$data/manifest.json'))['uncompressed_bytes']/1e6, 1))")

engine() { # $1 = pipeline name; appends "secs kb" to $work/$1.times
  /usr/bin/time -f '%e %M' -o "$work/t" "$bin" run "$work/$1.toml" --progress off 2>"$work/log" \
    || { cat "$work/log" >&2; exit 1; }
  cat "$work/t" >> "$work/$1.times"
  local out
  out=$(gzip -dc "$work/latest.jsonl.gz" | wc -l)
  [[ "$out" == "$expected" ]] || { echo "engine ($1) wrote $out records, expected $expected" >&2; exit 1; }
  echo "  engine $1: $(cat "$work/t")" >&2
}
echo "load average before: $(uptime)" >&2
for i in $(seq 1 "$runs"); do
  engine default
  (cd "$work" && /usr/bin/time -f '%e %M' -o "$work/td" "$venv/bin/python" "$shared/bench/duck_job.py" compact 1 "$data" --variant objects --outdir "$work/duck" > "$work/duck.json")
  cat "$work/td" >> "$work/duck.times"
  got=$(python3 -c "import json; print(json.load(open('$work/duck.json'))['result'])")
  [[ "$got" == "$expected" ]] || { echo "duckdb wrote $got records, expected $expected" >&2; exit 1; }
  echo "  duckdb: $(cat "$work/td")" >&2
  # DuckDB with as many threads as the machine has cores (the engine uses them all too).
  (cd "$work" && /usr/bin/time -f '%e %M' -o "$work/td" "$venv/bin/python" "$shared/bench/duck_job.py" compact "$(nproc)" "$data" --variant objects --outdir "$work/duckn" > "$work/duckn.json")
  cat "$work/td" >> "$work/duckn.times"
  got=$(python3 -c "import json; print(json.load(open('$work/duckn.json'))['result'])")
  [[ "$got" == "$expected" ]] || { echo "duckdb ($(nproc) threads) wrote $got records, expected $expected" >&2; exit 1; }
  echo "  duckdb $(nproc) threads: $(cat "$work/td")" >&2
  engine spill
  echo "run $i done; load: $(uptime | sed 's/.*load average: //')" >&2
done

python3 - "$records" "$raw_mb" "$expected" "$work" <<'PY'
import statistics, sys
records, raw_mb, out, work = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def load(name):
    rows = [l.split() for l in open(f"{work}/{name}.times") if l.strip()]
    return statistics.median(float(r[0]) for r in rows), max(int(r[1]) for r in rows) / 1024, len(rows)
d, dr, n = load("duck")
dn, dnr, _ = load("duckn")
import os
cores = os.cpu_count()
print(f"compact benchmark: {records} records, {raw_mb} MB uncompressed, {out} keys out, medians of {n} interleaved runs")
for name, label, limit in (("default", "flux-engine 512MiB", 512), ("spill", "flux-engine 64MiB ", 64)):
    e, er, _ = load(name)
    print(f"  {label}: {e:6.2f} s  {raw_mb/e:6.1f} MB/s  peak RSS {er:6.1f} MB (target <= {limit + 64} MiB)  ratio to duckdb 1 thread {e/d:.2f}, to duckdb {cores} threads {e/dn:.2f} (target <= 0.5 at equal threads)")
print(f"  duckdb (1t)       : {d:6.2f} s  {raw_mb/d:6.1f} MB/s  peak RSS {dr:6.1f} MB")
print(f"  duckdb ({cores}t)       : {dn:6.2f} s  {raw_mb/dn:6.1f} MB/s  peak RSS {dnr:6.1f} MB")
PY
uptime
