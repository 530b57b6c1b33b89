#!/usr/bin/env bash
# The Rust toolchain pieces the suite and the lint gate need.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || { echo "no cargo on this machine: install rustup first"; exit 1; }
rustup component add clippy rustfmt >/dev/null 2>&1 || true
if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install cargo-nextest --locked
fi
