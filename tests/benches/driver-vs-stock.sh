#!/usr/bin/env bash
# Whole-process timings of the sm-rs driver beside stock sm's Python driver, and of our
# vdi_attach on the simulated default. Not part of CI (the stock code is not ours and is
# never committed): give a checkout of xcp-ng/sm (or xapi-project/sm with the old layout).
#
#   tests/benches/driver-vs-stock.sh /path/to/sm [RUNS]
#
# Stock sm needs the XenAPI and bitarray modules: they go in a venv under target/.
set -euo pipefail
cd "$(dirname "$0")/../.."
stock=$(realpath "${1:?usage: $0 PATH-TO-SM-CHECKOUT [RUNS]}")
runs=${2:-50}
venv=target/py-stock-sm
if ! "$venv/bin/python3" -c 'import XenAPI, bitarray' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check XenAPI bitarray
fi
cargo build --release -p sm-plugin --bin sm-driver -p sm-testkit --bin sm-sim-tool --bin sm-bench-driver
target/release/sm-bench-driver "$stock" "$venv/bin/python3" "$runs"
