#!/usr/bin/env bash
# Runs every check of flux-engine, as CI does: formatting, clippy, then the whole test suite
# against the AWS emulators, which it installs (pinned, cached under ~/.cache/flux-engine),
# starts on loopback and stops again, also on failure.
#
#   tests/run.sh                 everything, then each fuzz target for a bounded time (tests/fuzz.sh)
#   tests/run.sh -- archive      extra arguments after -- go to `cargo test` (a test filter; no fuzzing)
#
# Settings: FLUX_CACHE (cache root), CARGO_TARGET_DIR (default: $FLUX_CACHE/target, so a fresh
# clone on the same machine reuses the build; a cold cache works too), FLUX_FUZZ_SECONDS (per
# fuzz target, default 20; 0 skips fuzzing).
set -euo pipefail
cd "$(dirname "$0")/.."

export FLUX_CACHE="${FLUX_CACHE:-$HOME/.cache/flux-engine}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$FLUX_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$FLUX_CACHE"

test_args=()
if [[ "${1:-}" == "--" ]]; then
  shift
  test_args=("$@")
fi

step() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

step "toolchain"
cargo --version
rustc --version

step "format"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

# The fuzz crate has a lock file of its own, which a new dependency of the engine changes: checked
# here, in a second, rather than after the tests by the fuzz build.
step "fuzz lock file"
if ! (cd fuzz && cargo metadata --locked --format-version 1 >/dev/null); then
  echo "fuzz/Cargo.lock is out of date: run 'cargo metadata --manifest-path fuzz/Cargo.toml --format-version 1 >/dev/null' and commit fuzz/Cargo.lock" >&2
  exit 1
fi

# The console's browser test (engine/tests/it/serve_browser.rs) drives Debian's headless Chromium
# through chromedriver.
step "chromium"
if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq chromium chromium-driver >/dev/null
fi
/usr/bin/chromium --version

step "emulators"
env_lines=$(tests/emulators.sh up) && eval "$env_lines"
# The AWS_ENDPOINT_URL_* lines are for manual runs of the binary; tests point each process they
# start at the emulators themselves (engine/tests/it/support: emulators::Emulators::apply).
unset AWS_ENDPOINT_URL_KINESIS AWS_ENDPOINT_URL_S3 AWS_ENDPOINT_URL_EMR
trap 'tests/emulators.sh down || true' EXIT

step "schema is current"
cargo run -q --locked -p flux-engine -- schema | diff -u schemas/pipeline.schema.json - \
  || { echo "schemas/pipeline.schema.json is stale: run 'cargo run -p flux-engine -- schema > schemas/pipeline.schema.json'"; exit 1; }

step "tests"
log="$FLUX_CACHE/last-test-run.log"
set +e
cargo test --workspace --locked --no-fail-fast -- "${test_args[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# Fuzzing, after the tests: every decoder for a bounded time (tests/fuzz.sh). A failed fuzz
# target counts as one failed test in the closing line.
fuzz_failed=0
if [[ ${#test_args[@]} -eq 0 && "${FLUX_FUZZ_SECONDS:-20}" != 0 ]]; then
  step "fuzz"
  tests/fuzz.sh || fuzz_failed=1
fi

# One closing line for the whole suite (cargo prints one per test binary).
passed=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s += $1} END {print s + 0}')
failed=$((failed + fuzz_failed))
step "done"
echo "suite: $passed passed, $failed failed"
if [[ $status -eq 0 && $fuzz_failed -ne 0 ]]; then
  status=1
fi
exit "$status"
