#!/usr/bin/env bash
# Builds the Rigger packages: rigger-agent and rigger-master, as .deb
# (cargo-deb) and .rpm (cargo-generate-rpm), under target/package/.
#
#   scripts/package.sh                # release binaries (the default)
#   scripts/package.sh --profile dev  # package the debug binaries
#   scripts/package.sh --profile dev --no-build --deb-only
#                                     # what the tests do: the binaries
#                                     # `cargo test` built, .deb only
#
# Installs the packaging tools it needs from crates.io when they are missing
# (pinned versions). The man pages and shell completions come from the
# binaries' own command lines (`cargo xtask assets`).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1
profile=release
build=yes
formats="deb rpm"
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --no-build) build=no; shift ;;
        --deb-only) formats=deb; shift ;;
        *) echo "usage: scripts/package.sh [--profile release|dev] [--no-build] [--deb-only]" >&2; exit 64 ;;
    esac
done
out=target/package
mkdir -p "$out"

need_tool() { # subcommand crate version
    if ! cargo "$1" --version >/dev/null 2>&1; then
        echo "==> installing $2 $3"
        cargo install --locked --quiet "$2" --version "$3"
    fi
}
need_tool deb cargo-deb "$CARGO_DEB_VERSION"
case "$formats" in *rpm*) need_tool generate-rpm cargo-generate-rpm "$CARGO_GENERATE_RPM_VERSION" ;; esac

if [ "$build" = yes ]; then
    echo "==> binaries ($profile)"
    cargo build --profile "$profile" --package rigger-agent --package rigger-master --bins
fi
echo "==> man pages and completions"
# (The packages' metadata reads them from target/package/assets.)
rm -rf "$out/assets"
cargo xtask assets "$out/assets"

for package in rigger-agent rigger-master; do
    echo "==> $package.deb"
    # Debug builds are large and only for tests: faster compression.
    fast=""; [ "$profile" = release ] || fast=--fast
    cargo deb --no-build --quiet $fast --profile "$profile" --package "$package" --output "$out/"
    case "$formats" in *rpm*)
        echo "==> $package.rpm"
        # (Debug builds: gzip, ten times faster than zstd on their size.)
        compress=zstd; [ "$profile" = release ] || compress=gzip
        cargo generate-rpm --profile "$profile" --payload-compress "$compress" \
            --package "${package#rigger-}" --output "$out/"
    esac
done
ls -1 "$out"/*.deb "$out"/*.rpm 2>/dev/null || true
