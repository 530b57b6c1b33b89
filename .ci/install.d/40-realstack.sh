#!/usr/bin/env bash
# The real-stack tests (tests/realstack, tests/tests/realstack*.rs) boot a Debian guest under
# qemu. This installs what the host needs for that on Debian 12: qemu to run the guest, and
# debootstrap, mkfs.ext4 (-d), busybox-static and cpio to build its image. Idempotent: a machine
# that already has everything is left alone (no apt-get update). Exit 3, with one line on stdout
# saying why: this machine cannot (not root, not Debian 12); `cargo xtask test` then skips the
# real-stack tests, and CI (which requires them) stops here.
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
    echo "only root can install qemu and debootstrap"
    exit 3
fi
if ! grep -qs 'VERSION_CODENAME=bookworm' /etc/os-release; then
    echo "the installer of the real-stack tools knows Debian 12 (bookworm) only"
    exit 3
fi

# Two runs at once (two checkouts, CI beside a person) would race for dpkg's lock.
mkdir -p "${XDG_CACHE_HOME:-$HOME/.cache}/sm-rs"
exec 9>"${XDG_CACHE_HOME:-$HOME/.cache}/sm-rs/realstack-tools.lock"
flock 9
if have_all >/dev/null; then
    echo "realstack: host tools present ($(qemu-system-x86_64 --version | head -1))"
    exit 0
fi

# The Debian mirror this machine's apt already uses for bookworm: its URI from a deb822 stanza
# (enabled, Types deb, Suites bookworm) or a one-line "deb [opts] URI bookworm ..." entry.
bookworm_mirror() {
    awk 'BEGIN { RS = ""; FS = "\n" }
        {
            uri = ""; deb = 0; suite = 0; enabled = 1
            for (i = 1; i <= NF; i++) {
                line = $i " "
                if (line ~ /^URIs:/) { split(line, w, /[ \t]+/); uri = w[2] }
                else if (line ~ /^Types:/ && line ~ /[ \t]deb[ \t]/) deb = 1
                else if (line ~ /^Suites:/ && line ~ /[ \t]bookworm[ \t]/) suite = 1
                else if (line ~ /^Enabled:[ \t]*no/) enabled = 0
            }
            if (uri != "" && deb && suite && enabled) { print uri; exit }
        }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true
}
bookworm_mirror_one_line() {
    awk '$1 == "deb" {
            i = 2
            if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
            if ($(i + 1) == "bookworm") { print $i; exit }
        }' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true
}

# The backports suite, on the mirror this machine already uses.
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    mirror="$(bookworm_mirror)"
    [ -n "$mirror" ] || mirror="$(bookworm_mirror_one_line)"
    if [ -z "$mirror" ]; then
        echo "realstack: no bookworm entry in /etc/apt/sources.list or /etc/apt/sources.list.d/:" \
            "add this machine's Debian mirror there (bookworm-backports is taken from it)" >&2
        exit 1
    fi
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
