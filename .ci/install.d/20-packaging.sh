#!/usr/bin/env bash
# `cargo xtask dist` and its test (tests/tests/packaging_rpm.rs) build static binaries for
# x86_64-unknown-linux-musl (ring's C code needs musl-gcc) and the RPM with rpmbuild; the test
# installs it into a scratch root with rpm, enables the agent's unit there (systemctl --root)
# and checks it with systemd-analyze verify against systemd's own targets. Debian 12: the musl
# target from rustup, musl-tools, rpm and systemd (its tools and unit files; installing it in
# a container starts nothing) from apt. Idempotent: a machine that has everything is left alone.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
export PATH="$HOME/.cargo/bin:$PATH"
if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
    rustup target add x86_64-unknown-linux-musl
fi
if ! command -v musl-gcc >/dev/null || ! command -v rpmbuild >/dev/null \
    || ! command -v systemd-analyze >/dev/null || ! command -v systemctl >/dev/null \
    || [ ! -e /usr/lib/systemd/system/multi-user.target ]; then
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends musl-tools rpm systemd >/dev/null
fi
echo "packaging: musl target, $(musl-gcc -dumpversion 2>/dev/null | head -1 | sed 's/^/gcc /'), $(rpmbuild --version), $(systemctl --version | head -1)"
