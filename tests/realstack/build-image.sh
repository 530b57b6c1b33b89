#!/usr/bin/env bash
# Builds the real-stack guest: a Debian bookworm root with the stock distribution kernel,
# dm-multipath, multipathd, open-iscsi, tgt and the LIO target, booted straight from a kernel
# and a tiny busybox initrd (no bootloader, no initramfs-tools, no systemd).
#
#   build-image.sh CACHE_DIR OUT_DIR
#
# OUT_DIR receives vmlinuz (and vmlinux, the same kernel uncompressed with a PVH entry point,
# when it has one), initrd.img, rootfs.ext4 and kernel-version. CACHE_DIR keeps what is
# slow to make and rarely changes: the debootstrap tree (keyed by the package list) and the
# kernel package. The Rust harness (tests/src/realstack/image.rs) runs this under a lock and
# keys OUT_DIR by a hash of everything in tests/realstack/, so a changed guest file rebuilds
# the image but reuses the debootstrap tree (seconds instead of a minute).
#
# Needs root (debootstrap, chroot), debootstrap, mkfs.ext4 with -d (no loop mount: the host
# kernel has no device-mapper and we want no mounts), busybox-static, cpio, gzip, and apt on
# the host to fetch the kernel package. Env: SM_RS_REALSTACK_MIRROR (default: the host's first
# apt mirror); SM_RS_DOM0_MULTIPATHD_SRC, the directory with the sources of the dom0's
# multipathd 0.4.9-136.xs8 (the project's ../shared/dom0-multipathd; the harness sets it when
# it exists): when set, that daemon is built too and installed beside Debian's (section 2b).
set -euo pipefail
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
export LC_ALL=C

[ $# = 2 ] || { echo "usage: $0 CACHE_DIR OUT_DIR" >&2; exit 2; }
CACHE="$1"
OUT="$2"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SUITE=bookworm
IMG_SIZE=1G
started=$(date +%s%N)
step() { echo "[$(( ($(date +%s%N) - started) / 1000000 )) ms] $*"; }

# What the guest runs. python3 carries the command agent and the I/O checker.
PACKAGES=(
    multipath-tools sg3-utils lsscsi
    open-iscsi tgt
    udev kmod iproute2 procps util-linux
    python3
)

# Kernel modules the guest may load; everything else is deleted from the image (the
# dependency closure of this list is kept). The stock kernel, not -cloud-amd64: that one lacks
# scsi_dh_alua (CONFIG_SCSI_DH) and 9p.
MODULES=(
    virtio_pci virtio_blk virtio_scsi virtio_console ext4
    sd_mod sg scsi_debug scsi_dh_alua scsi_dh_emc scsi_dh_rdac
    dm_mod dm_multipath dm_round_robin dm_service_time dm_queue_length dm_flakey dm_delay
    9p 9pnet_virtio iscsi_tcp dummy loop
    configfs target_core_mod target_core_file target_core_iblock target_core_user
    iscsi_target_mod tcm_loop
)

mirror="${SM_RS_REALSTACK_MIRROR:-}"
if [ -z "$mirror" ]; then
    mirror="$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
    [ -n "$mirror" ] || mirror="$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)"
    if [ -z "$mirror" ]; then
        echo "no Debian mirror in /etc/apt/sources.list{,.d}: add this machine's mirror there," \
            "or set SM_RS_REALSTACK_MIRROR" >&2
        exit 1
    fi
fi

mkdir -p "$CACHE"
rm -rf "$OUT"
mkdir -p "$OUT"
WORK="$OUT/work"
mkdir -p "$WORK"

# ---- 1. debootstrap tree, shared by every image with the same package list ----
base_key="$(printf '%s\n' "$SUITE" "${PACKAGES[@]}" | sha256sum | cut -c1-16)"
BASE="$CACHE/debootstrap-$base_key"
if [ ! -f "$BASE/.complete" ]; then
    rm -rf "$BASE"
    step "debootstrap $SUITE (minbase + ${#PACKAGES[@]} packages) from $mirror"
    if ! debootstrap --variant=minbase --components=main \
        --include="$(IFS=,; echo "${PACKAGES[*]}")" \
        "$SUITE" "$BASE" "$mirror" >"$CACHE/debootstrap.log" 2>&1; then
        tail -n 40 "$CACHE/debootstrap.log" >&2
        exit 1
    fi
    # keep only the newest tree: each one is ~300 MB
    find "$CACHE" -maxdepth 1 -name 'debootstrap-*' ! -path "$BASE" -exec rm -rf {} +
    touch "$BASE/.complete"
    step "debootstrap done"
else
    step "reusing debootstrap tree $BASE"
fi
ROOT="$WORK/root"
cp -a "$BASE" "$ROOT"
rm -f "$ROOT/.complete"

# ---- 2. kernel: unpack the .deb ourselves (initramfs-tools would cost 20 s and a big initrd) ----
KCACHE="$CACHE/kernel"
mkdir -p "$KCACHE"
if ! compgen -G "$KCACHE/linux-image-*.deb" >/dev/null; then
    kpkg="$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ { print $2; exit }')"
    [ -n "$kpkg" ] || { echo "apt does not know linux-image-amd64 (run apt-get update)" >&2; exit 1; }
    step "downloading $kpkg"
    (cd "$KCACHE" && apt-get download -q "$kpkg" >/dev/null 2>&1) \
        || { echo "apt-get download $kpkg failed" >&2; exit 1; }
fi
kdeb="$(compgen -G "$KCACHE/linux-image-*.deb" | head -n 1)"
# Unpacked aside and copied in: extracting into a usrmerged root would replace the /lib
# symlink by a directory.
dpkg-deb -x "$kdeb" "$WORK/kernel"
KVER="$(ls "$WORK/kernel/lib/modules")"
mkdir -p "$ROOT/usr/lib/modules"
cp -a "$WORK/kernel/lib/modules/$KVER" "$ROOT/usr/lib/modules/"
cp "$WORK/kernel/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
# qemu boots an uncompressed ELF kernel with a PVH entry point straight into 32-bit mode:
# no real-mode setup, no decompressor, which under emulation saves about 7 s of every boot.
# Extract it from the bzImage with the guest's python3 (the host may have none).
cp "$OUT/vmlinuz" "$ROOT/tmp/vmlinuz"
if chroot "$ROOT" python3 - /tmp/vmlinuz /tmp/vmlinux <<'PY'
import lzma, struct, sys
data = open(sys.argv[1], "rb").read()
start = data.find(b"\xfd7zXZ\x00")
if start < 0:
    sys.exit("no xz payload in the bzImage")
elf = lzma.LZMADecompressor().decompress(data[start:])
if elf[:4] != b"\x7fELF":
    sys.exit("the payload is not an ELF kernel")
# look for the Xen note XEN_ELFNOTE_PHYS32_ENTRY (18) in the PT_NOTE segments
phoff, = struct.unpack_from("<Q", elf, 0x20)
phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
pvh = False
for i in range(phnum):
    ptype, _, offset, _, _, filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
    if ptype != 4:
        continue
    pos, end = offset, offset + filesz
    while pos + 12 <= end:
        namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
        name = elf[pos + 12:pos + 12 + namesz].rstrip(b"\0")
        pvh |= name == b"Xen" and ntype == 18
        pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
if not pvh:
    sys.exit("the kernel has no PVH entry point")
open(sys.argv[2], "wb").write(elf)
PY
then
    mv "$ROOT/tmp/vmlinux" "$OUT/vmlinux"
    step "PVH kernel extracted"
else
    step "no PVH kernel: the VM boots the bzImage (slower)"
fi
rm -f "$ROOT/tmp/vmlinuz" "$ROOT/tmp/vmlinux"
chroot "$ROOT" depmod "$KVER"

# Keep the dependency closure of MODULES (plus crypto/ and lib/, where soft dependencies such
# as crc32c for ext4 live), delete the rest: 300 MB of drivers a VM never loads, and no kvm
# modules (udev autoloading kvm_amd made boots 7 s slower).
keep="$WORK/keep.txt"
for m in "${MODULES[@]}"; do
    chroot "$ROOT" modprobe -S "$KVER" --show-depends "$m" \
        || { echo "module $m is not in kernel $KVER" >&2; exit 1; }
done | awk '$1 == "insmod" { print $2 }' | sort -u >"$keep"
kmods="$ROOT/usr/lib/modules/$KVER/kernel"
find "$kmods" -name '*.ko*' | sed "s|^$ROOT||; s|^/usr/lib/|/lib/|" >"$WORK/all.txt"
{ grep -v -F -x -f "$keep" "$WORK/all.txt" || true; } \
    | { grep -v -E "^/lib/modules/$KVER/kernel/(crypto|lib|arch/x86/crypto)/" || true; } \
    | sed "s|^|$ROOT|" | xargs -r rm -f
find "$kmods" -type d -empty -delete
chroot "$ROOT" depmod "$KVER"
step "kernel $KVER: kept $(find "$kmods" -name '*.ko*' | wc -l) modules ($(du -sh "$kmods" | cut -f1))"

# ---- 2b. the dom0's multipathd 0.4.9-136.xs8, beside Debian's 0.9.4 ----
# Built as its spec builds it (the tarball, the spec's Patch series in spec order with -p1,
# `make LIB=lib64`, `make install` with the spec's variables), plus only the fixes a modern
# compiler forces (dom0/smrs-*.patch, each with its reason), in a throw-away copy of the
# debootstrap tree with the build dependencies added: so it links against the guest's own
# libraries and the guest's package list (and its cache key) stays as it is. The result is
# cached by a hash of the sources, our patches and the debootstrap key.
#
# Both daemons live in one image: 0.4.9 under /opt/dom0-multipathd (its libmultipath has the
# same soname as Debian's, so its programs run through wrappers that set LD_LIBRARY_PATH;
# its checker and prioritizer plugins are in /usr/lib64/multipath, the path compiled into it,
# which Debian's does not use). The init script picks one at boot (smrs.daemon=).
DOM0=/opt/dom0-multipathd
DOM0_SRC="${SM_RS_DOM0_MULTIPATHD_SRC:-}"
if [ -n "$DOM0_SRC" ]; then
    spec="$DOM0_SRC/device-mapper-multipath.spec"
    [ -f "$spec" ] || { echo "no $spec" >&2; exit 1; }
    mapfile -t series < <(awk '/^Patch[0-9]+:/ { print $2 }' "$spec")
    tarball="$DOM0_SRC/$(awk '/^Source0:/ { print $2; exit }' "$spec")"
    dom0_key="$( {
        echo "$base_key"
        sha256sum "$spec" "$tarball" "$HERE"/dom0/*.patch | cut -d' ' -f1
        for p in "${series[@]}"; do sha256sum "$DOM0_SRC/SOURCES/$p" | cut -d' ' -f1; done
    } | sha256sum | cut -c1-16)"
    DOM0_BUILT="$CACHE/dom0-multipathd-$dom0_key"
    if [ ! -f "$DOM0_BUILT/.complete" ]; then
        rm -rf "$DOM0_BUILT"
        BCH="$CACHE/dom0-build-chroot"
        rm -rf "$BCH"
        cp -a "$BASE" "$BCH"
        cp /etc/resolv.conf "$BCH/etc/resolv.conf" 2>/dev/null || true
        step "dom0 multipathd: build dependencies in a copy of the debootstrap tree"
        # the spec's BuildRequires, as Debian names them (librados for the rbd checker is
        # x86_64-only there and not built by this snapshot's checkers Makefile)
        if ! chroot "$BCH" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends gcc make libc6-dev pkg-config libdevmapper-dev libaio-dev \
            libjson-c-dev libudev-dev libreadline-dev libsystemd-dev \
            >"$CACHE/dom0-build.log" 2>&1; then
            tail -n 30 "$CACHE/dom0-build.log" >&2
            exit 1
        fi
        mkdir -p "$BCH/build"
        tar -xzf "$tarball" -C "$BCH/build"
        src="$(find "$BCH/build" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
        for p in "${series[@]}"; do
            patch -d "$src" -p1 -s --no-backup-if-mismatch <"$DOM0_SRC/SOURCES/$p" \
                || { echo "patch $p does not apply" >&2; exit 1; }
        done
        for p in "$HERE"/dom0/smrs-*.patch; do
            patch -d "$src" -p1 -s --no-backup-if-mismatch <"$p" \
                || { echo "our patch $p does not apply" >&2; exit 1; }
        done
        step "dom0 multipathd: ${#series[@]} patches of the spec and $(ls "$HERE"/dom0/smrs-*.patch | wc -l) of ours applied; make"
        rel="${src#"$BCH"}"
        if ! chroot "$BCH" sh -c "cd '$rel' && make -j2 LIB=lib64 && make install DESTDIR=/dest \
            bindir=$DOM0/sbin syslibdir=$DOM0/lib64 libdir=/usr/lib64/multipath \
            rcdir=$DOM0/init.d unitdir=$DOM0/systemd includedir=$DOM0/include \
            pkgconfdir=$DOM0/pkgconfig libudevdir=$DOM0/udev mandir=$DOM0/man \
            man3dir=$DOM0/man man5dir=$DOM0/man" >>"$CACHE/dom0-build.log" 2>&1; then
            grep -E 'error|Error' "$CACHE/dom0-build.log" | head -n 20 >&2
            tail -n 20 "$CACHE/dom0-build.log" >&2
            exit 1
        fi
        rm -rf "$BCH/dest$DOM0"/{include,pkgconfig,man,init.d,systemd}
        # libraries the programs need that the guest lacks (readline, say) come along
        for exe in "$BCH/dest$DOM0"/sbin/*; do
            { chroot "$BCH" env LD_LIBRARY_PATH="/dest$DOM0/lib64" ldd "${exe#"$BCH"}" || true; } \
                | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'
        done | sort -u | while read -r lib; do
            case "$lib" in /dest/*) continue ;; esac
            [ -e "$BASE$lib" ] || cp -L "$BCH$lib" "$BCH/dest$DOM0/lib64/"
        done
        mkdir -p "$BCH/dest$DOM0/bin"
        for prog in multipath multipathd mpathpersist kpartx; do
            [ -x "$BCH/dest$DOM0/sbin/$prog" ] || continue
            printf '#!/bin/sh\n# the dom0 multipathd 0.4.9-xs; its libraries first (Debian has a libmultipath.so.0 too)\nLD_LIBRARY_PATH=%s/lib64 exec %s/sbin/%s "$@"\n' \
                "$DOM0" "$DOM0" "$prog" >"$BCH/dest$DOM0/bin/$prog"
            chmod 0755 "$BCH/dest$DOM0/bin/$prog"
        done
        # its udev rules call multipath (-c: is this a path?) and kpartx from /sbin: ours
        sed -i "s|^ENV{MPATH_SBIN_PATH}=\"/sbin\"|ENV{MPATH_SBIN_PATH}=\"$DOM0/bin\"|; /^TEST!=\"\$env{MPATH_SBIN_PATH}\/multipath\"/d" \
            "$BCH/dest$DOM0/udev/rules.d/62-multipath.rules"
        echo "0.4.9-136.xs8 from $(basename "$tarball"), ${#series[@]} patches of the spec, ours: $(cd "$HERE/dom0" && ls smrs-*.patch | tr '\n' ' ')" \
            >"$BCH/dest$DOM0/VERSION"
        mv "$BCH/dest" "$DOM0_BUILT"
        rm -rf "$BCH"
        find "$CACHE" -maxdepth 1 -name 'dom0-multipathd-*' ! -path "$DOM0_BUILT" -exec rm -rf {} +
        touch "$DOM0_BUILT/.complete"
        step "dom0 multipathd built"
    else
        step "reusing the dom0 multipathd build $DOM0_BUILT"
    fi
    cp -a "$DOM0_BUILT/." "$ROOT/"
    rm -f "$ROOT/.complete"
    mkdir -p "$ROOT$DOM0/etc"
    install -m 0644 "$DOM0_SRC/xcp-ng-sm-multipath.conf" "$ROOT$DOM0/etc/multipath.conf"
    install -m 0644 "$DOM0_SRC/xcp-ng-sm-custom.conf" "$ROOT$DOM0/etc/custom.conf"
    # our drop-in as the RPM installs it (the harness hashes it with the image's inputs)
    install -m 0644 "$HERE/../../packaging/multipath/sm-rs.conf" "$ROOT$DOM0/etc/sm-rs.conf"
    echo "dom0-0.4.9-xs" >>"$OUT/daemons"
fi
echo "debian-0.9.4" >>"$OUT/daemons"

# ---- 3. guest configuration ----
install -m 0755 "$HERE/guest/init" "$ROOT/sbin/smrs-init"
install -m 0755 "$HERE/guest/agent" "$ROOT/usr/local/sbin/smrs-agent"
install -m 0755 "$HERE/guest/io-check" "$ROOT/usr/local/sbin/smrs-io-check"
install -m 0755 "$HERE/guest/paths" "$ROOT/usr/local/sbin/smrs-paths"
install -m 0755 "$HERE/guest/tgt-portals" "$ROOT/usr/local/sbin/smrs-tgt-portals"
install -m 0755 "$HERE/guest/lio-alua" "$ROOT/usr/local/sbin/smrs-lio-alua"
install -m 0644 "$HERE/guest/multipath.conf" "$ROOT/etc/multipath.conf"
install -m 0755 "$HERE/guest/syslog" "$ROOT/usr/local/sbin/smrs-syslog"
install -m 0755 "$HERE/guest/mpathd-send" "$ROOT/usr/local/sbin/smrs-mpathd-send"
echo smrs-guest >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost smrs-guest\n' >"$ROOT/etc/hosts"
# one fixed initiator name: open-iscsi's postinst leaves a placeholder in a chroot
echo "InitiatorName=iqn.2026-01.invalid.sm-rs:guest" >"$ROOT/etc/iscsi/initiatorname.iscsi"
mkdir -p "$ROOT/mnt/host"
rm -rf "$ROOT"/usr/share/{doc,man,info,locale}/* "$ROOT"/var/cache/apt/archives/*.deb \
    "$ROOT"/var/lib/apt/lists/* "$ROOT"/usr/lib/firmware
echo "$KVER" >"$OUT/kernel-version"
step "guest configured: root $(du -sh "$ROOT" | cut -f1)"

# ---- 4. initrd: busybox and what mounting /dev/vda needs, then switch_root ----
IR="$WORK/initrd"
mkdir -p "$IR"/{bin,dev,proc,sys,newroot,modules}
cp /bin/busybox "$IR/bin/busybox"
for applet in sh mount umount switch_root insmod sleep cat; do
    ln -s busybox "$IR/bin/$applet"
done
for m in virtio_pci virtio_blk ext4; do
    chroot "$ROOT" modprobe -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
done | awk '!seen[$0]++' | while read -r ko; do
    cp "$ROOT$ko" "$IR/modules/"
    basename "$ko" >>"$IR/modules/order"
done
cat >"$IR/init" <<'INIT'
#!/bin/sh
# initrd of the sm-rs real-stack guest: load the root disk's drivers in dependency order,
# mount it, and hand over to the real init named by init= (default /sbin/smrs-init).
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules/order); do insmod "/modules/$m" 2>/dev/null; done
n=0
while [ ! -b /dev/vda ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n + 1)); done
mount -t ext4 -o rw /dev/vda /newroot || { echo "initrd: cannot mount /dev/vda"; exec sh; }
init=/sbin/smrs-init
for arg in $(cat /proc/cmdline); do
    case "$arg" in init=*) init="${arg#init=}" ;; esac
done
umount /proc /sys /dev
exec switch_root /newroot "$init"
INIT
chmod 0755 "$IR/init"
(cd "$IR" && find . | cpio -o -H newc --quiet | gzip -1) >"$OUT/initrd.img"
step "initrd: $(wc -l <"$IR/modules/order") modules, $(du -h "$OUT/initrd.img" | cut -f1)"

# ---- 5. the root filesystem image, filled without mounting it ----
mkfs.ext4 -q -F -L smrs-root -d "$ROOT" "$OUT/rootfs.ext4" "$IMG_SIZE"
rm -rf "$WORK"
step "rootfs.ext4: $(du -h "$OUT/rootfs.ext4" | cut -f1) used of $IMG_SIZE"
