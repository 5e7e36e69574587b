#!/usr/bin/env bash
# Runs every test of the workspace, installing what is missing first:
#   protoc (gen.sh, etcd-client's build), protoc-gen-prost (gen.sh), redis-server and
#   etcd (membership backend tests run the real servers), chromium (WebSocket test in
#   a real browser), the PyPI `kcp` package (KCP interop against the reference ikcp.c).
# Then: format, lints, generated code up to date, all tests, a benchmark smoke run.
#   ./test.sh            everything
#   ./test.sh --no-bench skip the release-mode benchmark smoke run
set -euo pipefail
cd "$(dirname "$0")"

bench=1
for arg in "$@"; do
    case "$arg" in
        --no-bench) bench=0 ;;
        *) echo "usage: $0 [--no-bench]" >&2; exit 2 ;;
    esac
done

step() { printf '\n==> %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v etcd >/dev/null || missing+=(etcd-server etcd-client)
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v protoc-gen-prost >/dev/null; then
    step "installing protoc-gen-prost 0.5.0"
    cargo install protoc-gen-prost --version 0.5.0 --locked --quiet
fi
if ! python3 -c 'import kcp' 2>/dev/null; then
    step "installing the PyPI kcp package (reference ikcp.c, for KCP interop tests)"
    python3 -m pip install --quiet kcp || python3 -m pip install --quiet --break-system-packages kcp
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "cargo doc (no broken or private doc links)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --quiet

if [ -x ./gen.sh ]; then
    step "generated service/ is up to date"
    ./gen.sh --check
fi

step "cargo test (all features: Redis and etcd backends included)"
cargo test --workspace --all-features

if [ "$bench" -eq 1 ]; then
    step "benchmark smoke run (release)"
    cargo run --release -p bench -- --quick --rounds 1 --scale
fi
