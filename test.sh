#!/usr/bin/env bash
# Runs every test (placeholder until the full script lands).
set -euo pipefail
cd "$(dirname "$0")"
cargo test --workspace
