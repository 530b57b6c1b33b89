#!/usr/bin/env bash
# The real-stack tests (tests/realstack, tests/tests/realstack*.rs) boot a Debian guest under
# qemu. This installs what the host needs for that on Debian 12: qemu to run the guest, and
# debootstrap, mkfs.ext4 (-d), busybox-static and cpio to build its image. Idempotent: a machine
# that already has everything is left alone (no apt-get update).
#
# qemu comes from bookworm-backports (10.x), not bookworm (7.2): the machines this project runs
# on carry qemu-utils from backports, whose "Breaks: qemu-system-common (<< 8.0)" forbids
# bookworm's qemu-system-x86, and 10.x is the version the real-stack timings were measured with.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
export PATH="/usr/local/sbin:/usr/sbin:/sbin:$PATH"

have_all() {
    command -v qemu-system-x86_64 && command -v debootstrap && command -v mkfs.ext4 \
        && command -v cpio && command -v gzip && [ -x /bin/busybox ] \
        && apt-cache show linux-image-amd64 # the image builder fetches the guest kernel with apt
}
if have_all >/dev/null; then
    echo "realstack: host tools present ($(qemu-system-x86_64 --version | head -1))"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "realstack: not root, cannot install qemu/debootstrap; the real-stack tests will skip"
    exit 0
fi
if ! grep -qs 'VERSION_CODENAME=bookworm' /etc/os-release; then
    echo "realstack: this installer knows Debian 12 (bookworm) only; the real-stack tests will skip"
    exit 0
fi

# The backports suite, on the mirror this machine already uses.
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    mirror="$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
    [ -n "$mirror" ] || mirror="$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)"
    [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
    cat > /etc/apt/sources.list.d/sm-rs-backports.sources <<SRC
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends \
    debootstrap e2fsprogs busybox-static cpio gzip >/dev/null
apt-get install -y -q --no-install-recommends -t bookworm-backports \
    qemu-system-x86 qemu-system-common qemu-system-data >/dev/null
echo "realstack: installed $(qemu-system-x86_64 --version | head -1)"
