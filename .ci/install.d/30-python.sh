#!/usr/bin/env bash
# The Python peer test (tests/tests/xapi_python.rs) drives the xapi simulator with the official
# XenAPI binding from PyPI, from a venv (Debian 12's system Python is externally managed):
# $SM_RS_PY_VENV, default ~/.cache/sm-rs/py-xenapi, one per machine and user, which
# `cargo xtask test` hands to the test. `bitarray` is for stock sm's modules, which the
# opt-in stock_sm test imports (dom0 has python3-bitarray). Idempotent, and under a lock: an intact venv is left
# alone. Exit 3 (one line on stdout saying why): this machine cannot, as a non-root user without
# python3-venv; `cargo xtask test` then skips the test.
set -euo pipefail
cache="${XDG_CACHE_HOME:-$HOME/.cache}/sm-rs"
venv="${SM_RS_PY_VENV:-$cache/py-xenapi}"
mkdir -p "$cache" "$(dirname "$venv")"
exec 9>"$cache/py-xenapi.lock"
flock 9

if [ -x "$venv/bin/python3" ] && "$venv/bin/python3" -c 'import XenAPI, bitarray' 2>/dev/null; then
    echo "XenAPI already in $venv"
    exit 0
fi
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "python3 with venv is not installed, and only root can install it (apt-get install python3-venv)"
        exit 3
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python3" -m pip install --quiet --disable-pip-version-check 'XenAPI>=24' bitarray >&2
"$venv/bin/python3" -c 'import XenAPI' && echo "XenAPI installed in $venv"
