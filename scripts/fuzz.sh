#!/usr/bin/env bash
# Fuzzes the decoders and loaders that take input from outside (a node, a
# pack, the site) for a bounded time each, with cargo-fuzz (libFuzzer).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Targets: catalog, manifest, archive, site_data, facts (all by default),
# 60 s each by default. cargo-fuzz needs nightly compiler features; on the
# stable toolchain RUSTC_BOOTSTRAP=1 enables them. It is installed from
# crates.io when missing. A crash stops the script with the input saved
# under fuzz/artifacts/<target>/: reproduce it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz <target> <file>
# and add it as a regression test (see fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(catalog manifest archive site_data facts)
fi
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
cd fuzz
for target in "${targets[@]}"; do
    corpus="corpus/$target"
    mkdir -p "$corpus"
    echo "==> fuzzing $target for ${seconds}s"
    cargo fuzz run -O --fuzz-dir . "$target" "$corpus" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 2>&1 \
        | grep -E "^(#[0-9]+ *DONE|stat::number_of_executed_units|stat::peak_rss_mb|==|INFO: Running|SUMMARY|Test unit written)" || true
    if find "artifacts/$target" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) 2>/dev/null | grep -q .; then
        echo "FOUND: see fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
echo "==> no crash in ${#targets[@]} target(s), ${seconds}s each"
