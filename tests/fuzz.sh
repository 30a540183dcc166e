#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ and runs each for a bounded time (tests/run.sh calls it
# after the test suite). Installs cargo-fuzz (pinned) under $FLUX_CACHE when missing; builds
# under $FLUX_CACHE/fuzz-target, so a second run is warm; new corpus entries go to
# $FLUX_CACHE/fuzz-corpus/<target>, the committed seeds in fuzz/corpus/<target> stay as they are.
#
#   tests/fuzz.sh                      every target, $FLUX_FUZZ_SECONDS (default 20) each
#   tests/fuzz.sh envelope 600         one target for 600 s
#   tests/fuzz.sh envelope 0 -- -runs=1000   arguments after -- go to libFuzzer
#
# A crash (panic, failed property, timeout, out of memory) fails the run; libFuzzer prints the
# input, and keeps it under fuzz/artifacts/<target>/. Reproduce it with
# `cargo fuzz run --sanitizer none <target> fuzz/artifacts/<target>/<file>` from the repo root.
set -euo pipefail
cd "$(dirname "$0")/.."

export FLUX_CACHE="${FLUX_CACHE:-$HOME/.cache/flux-engine}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
CARGO_FUZZ_VERSION=0.13.2
targets=(pipeline_load envelope archive_names filter_expr kpl compact_key)

only="${1:-}"
seconds="${2:-${FLUX_FUZZ_SECONDS:-20}}"
shift $(( $# < 2 ? $# : 2 ))
[[ "${1:-}" == "--" ]] && shift
extra=("$@")
if [[ -n "$only" ]]; then
  [[ " ${targets[*]} " == *" $only "* ]] || { echo "unknown fuzz target $only (targets: ${targets[*]})" >&2; exit 2; }
  targets=("$only")
fi

tools="$FLUX_CACHE/tools/cargo-fuzz-$CARGO_FUZZ_VERSION"
if ! "$tools/bin/cargo-fuzz" --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION into $tools"
  # Its own temporary target dir, not the workspace's; unoptimised (--debug): it builds faster,
  # and a tool that only starts cargo and the targets needs no optimisation.
  env -u CARGO_TARGET_DIR cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked \
    --debug --root "$tools" --quiet
fi
export PATH="$tools/bin:$PATH"

# The targets are plain safe Rust (the crates forbid unsafe): no sanitizer, so the stable
# toolchain builds them and std is not rebuilt. One `cargo fuzz build` for all targets shares
# the dependency build; `cargo fuzz run` then finds them fresh.
build=(--sanitizer none --target-dir "$FLUX_CACHE/fuzz-target")
start=$SECONDS
(cd fuzz && cargo fuzz build "${build[@]}")
echo "fuzz: built in $((SECONDS - start)) s"
# cargo-fuzz has no --locked: a build that had to change the committed lock file fails here.
if ! git diff --quiet -- fuzz/Cargo.lock 2>/dev/null; then
  echo "fuzz/Cargo.lock is out of date: commit the change 'cargo fuzz build' made to it" >&2
  exit 1
fi

failed=()
for t in "${targets[@]}"; do
  corpus="$FLUX_CACHE/fuzz-corpus/$t"
  mkdir -p "$corpus"
  # The kept corpus grows with every run (a few thousand small files per target and hour of
  # fuzzing): past 20000 files it is minimised to the inputs that keep its coverage.
  if (( $(find "$corpus" -type f | wc -l) > 20000 )); then
    (cd fuzz && cargo fuzz cmin "${build[@]}" "$t" "$corpus") >"$FLUX_CACHE/fuzz-$t-cmin.log" 2>&1 \
      || echo "fuzz: minimising $corpus failed (see $FLUX_CACHE/fuzz-$t-cmin.log); going on"
  fi
  log="$FLUX_CACHE/fuzz-$t.log"
  set +e
  (cd fuzz && cargo fuzz run "${build[@]}" "$t" "$corpus" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "${extra[@]}") >"$log" 2>&1
  status=$?
  set -e
  execs=$(grep -Eo 'stat::number_of_executed_units: [0-9]+' "$log" | awk '{print $2}' | tail -1 || true)
  if [[ $status -eq 0 ]]; then
    echo "fuzz: $t ok, ${execs:-?} executions in ${seconds} s"
  elif [[ $t == pipeline_load ]] && grep -Eq 'ERROR: libFuzzer: (timeout|out-of-memory)' "$log"; then
    # One template instruction can build a huge value (string repetition, `~`; see the
    # target's docs): it stops the run early but does not fail it; a panic does.
    echo "fuzz: $t stopped early by a template value that grows without bound (known; not a failure):"
    grep -E 'ERROR: libFuzzer|^artifact_prefix|Test unit written|^Base64' "$log" | head -4
  else
    echo "fuzz: $t FAILED (exit $status); the end of $log:"
    tail -n 60 "$log"
    failed+=("$t")
  fi
done
if (( ${#failed[@]} )); then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}"
  exit 1
fi
