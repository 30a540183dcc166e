# Sourced by the benchmarks that run beside DuckDB (filter.sh, compact.sh): sets `repo`, `runs`
# (from $1, default 3), `shared`, `records`, `data` (the generated 2M-record archive, made once
# under FLUX_CACHE), `venv` (a virtualenv with duckdb==2.0.0), `bin` (the release binary, built)
# and `work` (a temporary folder removed on exit).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
runs=${1:-3}
cache=${FLUX_CACHE:-$HOME/.cache/flux-engine}
shared=${FLUX_SHARED:-$repo/../shared}
records=${BENCH_RECORDS:-2000000}
data="$cache/bench/d$records"
mkdir -p "$cache/bench"

if [[ ! -f "$data/manifest.json" ]]; then
  echo "generating $records records into $data (once)…" >&2
  python3 "$shared/bench/gen_archive.py" --records "$records" --shards 4 --keys 100000 --seed 42 --out "$data" >&2
fi
venv="$cache/bench/venv"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import duckdb' 2>/dev/null; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q duckdb==2.0.0 >&2
fi
cargo build -q --release -p flux-engine
bin="${CARGO_TARGET_DIR:-$repo/target}/release/flux-engine"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
