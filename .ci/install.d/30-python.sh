#!/usr/bin/env bash
# The Python peer test (tests/tests/xapi_python.rs) drives the xapi simulator with the official
# XenAPI binding from PyPI. It lives in a venv under target/ (Debian 12's system Python is
# externally managed), which the test uses. `bitarray` is for stock sm's modules, which the
# opt-in stock_sm test imports (dom0 has python3-bitarray). Idempotent: an intact venv is
# left alone.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/py-xenapi
if [ -x "$venv/bin/python3" ] && "$venv/bin/python3" -c 'import XenAPI, bitarray' 2>/dev/null; then
    echo "XenAPI already in $venv"
    exit 0
fi
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq python3 python3-venv >/dev/null
fi
rm -rf "$venv"
mkdir -p target
python3 -m venv "$venv"
"$venv/bin/python3" -m pip install --quiet --disable-pip-version-check 'XenAPI>=24' bitarray
"$venv/bin/python3" -c 'import XenAPI; print("XenAPI installed in '"$venv"'")'
