#!/usr/bin/env bash
# Benchmark: `archive` source → `filter` → `file` sink over the 2M-record archive of
# ../shared/bench/gen_archive.py, side by side with DuckDB on one thread and on as many threads
# as cores (duck_job.py filter 1|nproc --variant objects). Prints figures; asserts nothing about time.
#
#   tests/bench/filter.sh [RUNS]        (default 3 interleaved runs; medians are reported)
#
# Settings: FLUX_CACHE (default ~/.cache/flux-engine) holds the generated dataset and the DuckDB
# virtualenv; FLUX_SHARED (default ../shared next to the repo) holds gen_archive.py/duck_job.py;
# BENCH_RECORDS (default 2000000).
source "$(dirname "$0")/peer-setup.sh" "${1:-3}"
cat > "$work/filter.toml" <<TOML
[sources.archive]
type = "archive"
url = "$data/archive"
stream = "orders"
# A filter job's output order does not matter (DuckDB's does not keep one either): read
# concurrency (= CPUs) shards at once, each shard in sequence order, batches sent as they are
# ready. The default, order = "arrival", merges all shards by arrival time for replays.
order = "interleaved"

[transforms.hits]
type = "filter"
inputs = ["archive"]
where = "@.data.status == 'cancelled' && @.data.total > 100"

[sinks.out]
type = "file"
inputs = ["hits"]
path = "$work/hits.jsonl"
TOML

expected=$(python3 -c "import json; print(json.load(open('$data/manifest.json'))['expected']['filter_cancelled_total_gt_100'])")
raw_mb=$(python3 -c "import json; print(round(json.load(open('$data/manifest.json'))['uncompressed_bytes']/1e6, 1))")

engine_secs=(); engine_rss=(); duck_secs=(); duck_rss=(); duckn_secs=(); duckn_rss=()
for i in $(seq 1 "$runs"); do
  /usr/bin/time -f '%e %M' -o "$work/t" "$bin" run "$work/filter.toml" --progress off 2>"$work/log" \
    || { cat "$work/log" >&2; exit 1; }
  read -r s kb < "$work/t"; engine_secs+=("$s"); engine_rss+=("$kb")
  hits=$(wc -l < "$work/hits.jsonl")
  [[ "$hits" == "$expected" ]] || { echo "engine found $hits hits, expected $expected" >&2; exit 1; }
  (cd "$work" && /usr/bin/time -f '%e %M' -o "$work/td" "$venv/bin/python" "$shared/bench/duck_job.py" filter 1 "$data" --variant objects --outdir "$work/duck" > "$work/duck.json")
  read -r s kb < "$work/td"; duck_secs+=("$s"); duck_rss+=("$kb")
  # DuckDB with as many threads as the machine has cores (the engine uses them all too).
  (cd "$work" && /usr/bin/time -f '%e %M' -o "$work/td" "$venv/bin/python" "$shared/bench/duck_job.py" filter "$(nproc)" "$data" --variant objects --outdir "$work/duckn" > "$work/duckn.json")
  read -r s kb < "$work/td"; duckn_secs+=("$s"); duckn_rss+=("$kb")
  echo "run $i: engine ${engine_secs[-1]} s / $((engine_rss[-1] / 1024)) MB, duckdb ${duck_secs[-1]} s / $((duck_rss[-1] / 1024)) MB, duckdb $(nproc) threads ${duckn_secs[-1]} s" >&2
done

python3 - "$records" "$raw_mb" "$expected" "${engine_secs[*]}" "${engine_rss[*]}" "${duck_secs[*]}" "${duck_rss[*]}" "${duckn_secs[*]}" "${duckn_rss[*]}" <<'PY'
import os, statistics, sys
records, raw_mb, hits = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
es, er, ds, dr, dns, dnr = ([float(x) for x in a.split()] for a in sys.argv[4:10])
e, d, dn = statistics.median(es), statistics.median(ds), statistics.median(dns)
cores = os.cpu_count()
print(f"filter benchmark: {records} records, {raw_mb} MB uncompressed, {hits} hits, medians of {len(es)} interleaved runs")
print(f"  flux-engine : {e:6.2f} s  {records/e:10.0f} records/s  {raw_mb/e:6.1f} MB/s  peak RSS {max(er)/1024:6.1f} MB")
print(f"  duckdb (1t) : {d:6.2f} s  {records/d:10.0f} records/s  {raw_mb/d:6.1f} MB/s  peak RSS {max(dr)/1024:6.1f} MB")
print(f"  duckdb ({cores}t) : {dn:6.2f} s  {records/dn:10.0f} records/s  {raw_mb/dn:6.1f} MB/s  peak RSS {max(dnr)/1024:6.1f} MB")
print(f"  ratio engine/duckdb wall time: {e/d:.2f} against 1 thread, {e/dn:.2f} against {cores} threads (target <= 0.5 at equal threads); engine peak RSS target < 100 MB")
PY
