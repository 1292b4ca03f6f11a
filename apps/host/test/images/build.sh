#!/usr/bin/env bash
# Build Virga's Linux test guest images and the nested-KVM harness's L1 assets
# from Debian packages (linux-image-amd64, busybox-static).
#
# Output: <repo>/build/guests/   (see README.md beside this file)
#   linux/bzImage             the Debian kernel as packaged
#   linux/vmlinux             the ELF kernel taken out of the bzImage (PVH entry)
#   linux/initramfs.cpio.gz   busybox + virtio/ext4 modules + guest-init.sh as /init
#                             + guest-scenario.sh as /bin/virga-scenario + virga-io
#   linux/rootfs.ext4         64 MiB ext4 root with busybox and guest-init.sh as /sbin/init
#                             (and virga-scenario, virga-io)
#   tools/virga-io            our static I/O probe (virga-io/*.c, gcc -static), for L1 and L2
#   l1/vmlinux, l1/bzImage    the same kernel, for the L1 machine (links)
#   l1/initramfs.cpio.gz      busybox + virtio/9p/overlay/kvm modules + l1-init.sh as /init
#   l1-vfio/lib/modules, l1-vfio/etc/virga-modules
#                             VFIO's modules and their load order, which the VFIO
#                             scenario loads in its own L1 (run-in-l1.sh --machine q35-vfio)
#   manifest.env, manifest.json   paths and versions
#
# Usage: build.sh [--force] [--no-qemu] [--quiet]
#   --force    rebuild even when everything is up to date
#   --no-qemu  do not install qemu-system-x86 (the harness needs it; the images do not)
#   --quiet    print only warnings, errors and the final line
#
# VIRGA_SKIP_GUEST_IMAGES=1 skips everything; VIRGA_DEB_CACHE sets where the
# downloaded .debs are kept (default ~/.cache/virga/debs).
#
# Idempotent: when the kernel and busybox versions and the scripts that make
# the images are unchanged, it only checks and exits (about two seconds).
# Only Debian's apt repositories are used; nothing is installed on the host
# except missing tools via apt-get install.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../../.." && pwd)
OUT="$ROOT/build/guests"
# Downloaded packages are kept outside the work tree, so that a fresh clone
# on the same machine (CI) does not fetch ~70 MB again.
DEBS=${VIRGA_DEB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/virga/debs}

FORCE=0
WANT_QEMU=1
QUIET=0
for a in "$@"; do
    case "$a" in
        --force) FORCE=1 ;;
        --no-qemu) WANT_QEMU=0 ;;
        --quiet) QUIET=1 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "build.sh: unknown option '$a' (try --help)" >&2; exit 2 ;;
    esac
done

say() { [ "$QUIET" = 1 ] || echo "virga-images: $*"; }
warn() { echo "virga-images: warning: $*" >&2; }
die() { echo "virga-images: error: $*" >&2; exit 1; }

if [ "${VIRGA_SKIP_GUEST_IMAGES:-}" = 1 ]; then
    echo "virga-images: VIRGA_SKIP_GUEST_IMAGES=1, skipping (Linux guest tests will fail without the images)"
    exit 0
fi

# Modules for the L2 guest (dependencies are added from each module's
# depends= field). A leading "?" marks a module that may fail to load
# (crc32c-intel needs SSE4.2 in the guest CPU; crc32c_generic covers it).
L2_MODULES=(virtio_mmio virtio_pci virtio_pci_modern_dev virtio_pci_legacy_dev
    virtio_blk failover net_failover virtio_net virtio_balloon
    crc16 crc32c_generic ?crc32c_intel mbcache jbd2 ext4)
# Modules for L1, in the order GUESTS.md gives (ccp before kvm_amd), plus
# virtio_console for the job's output ports, virtio_rng for early entropy,
# tun/vhost for tests that use tap devices inside L1, and bridge (with its
# dependencies stp and llc) for `ip link add br0 type bridge`.
L1_MODULES=(virtio_ring virtio virtio_mmio virtio_pci_modern_dev virtio_pci_legacy_dev
    virtio_pci netfs fscache 9pnet 9pnet_virtio 9p overlay virtio_console ?virtio_rng
    irqbypass kvm ccp kvm_amd ?tun ?vhost_iotlb ?vhost ?vhost_net ?bridge)
# VFIO for the pass-through scenario's L1 only (not in the L1 initramfs, so
# the default L1 is unchanged): loaded there with insmod from l1-vfio/.
VFIO_MODULES=(vfio vfio_iommu_type1 vfio_virqfd vfio_pci_core vfio_pci)

# ---- tools -----------------------------------------------------------------
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else return 1
    fi
}

apt_updated=0
apt_update() {
    [ "$apt_updated" = 1 ] && return 0
    say "apt-get update"
    as_root apt-get update -qq || die "apt-get update failed (are Debian's apt repositories reachable?)"
    apt_updated=1
}

# Make sure `apt-cache` knows the package lists (a fresh machine may have none).
ensure_apt_lists() {
    if ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
        apt_update
        apt-cache show linux-image-amd64 >/dev/null 2>&1 ||
            die "apt-cache does not know linux-image-amd64 even after apt-get update (is this Debian with main enabled?)"
    fi
}

ensure_tools() {
    local -a need=()
    local cmd pkg
    while read -r cmd pkg; do
        command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
    done <<EOF
apt-get apt
dpkg-deb dpkg
xz xz-utils
gzip gzip
cpio cpio
mkfs.ext4 e2fsprogs
od coreutils
md5sum coreutils
gcc gcc
EOF
    # virga-io is linked statically: libc.a is in libc6-dev, which gcc
    # installed without recommends does not bring.
    if ! command -v gcc >/dev/null 2>&1 || [ "$(gcc -print-file-name=libc.a)" = libc.a ]; then
        need+=(libc6-dev)
    fi
    if [ "$WANT_QEMU" = 1 ] && ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
        need+=(qemu-system-x86)
    fi
    [ "${#need[@]}" = 0 ] && return 0
    # shellcheck disable=SC2207
    need=($(printf '%s\n' "${need[@]}" | sort -u))
    say "installing missing tools with apt-get: ${need[*]}"
    if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null 2>&1; then
        die "missing tools (${need[*]}); run as root or install them: apt-get install ${need[*]}"
    fi
    ensure_apt_lists
    if ! DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; then
        apt_update
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
            die "apt-get install ${need[*]} failed"
    fi
}

# ---- packages ----------------------------------------------------------------
candidate_version() {
    apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2; exit }'
}

resolve_kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}

deb_file() { # name version -> expected file name (apt-get download escapes ':' as %3a)
    local v=${2//:/%3a}
    echo "$DEBS/${1}_${v}_amd64.deb"
}

# download NAME VERSION: fetch the .deb unless it is already there.
download() {
    local name=$1 version=$2 f
    f=$(deb_file "$name" "$version")
    if [ -s "$f" ]; then return 0; fi
    say "apt-get download $name=$version (into $DEBS)"
    mkdir -p "$DEBS" || die "cannot create $DEBS (set VIRGA_DEB_CACHE to a writable folder)"
    if ! (cd "$DEBS" && apt-get download -qq -o APT::Sandbox::User=root "$name=$version" >/dev/null); then
        return 1
    fi
    [ -s "$f" ] || die "apt-get download $name=$version did not produce $f"
    # Older versions of the same package are of no further use.
    local old
    for old in "$DEBS/${name}"_*_amd64.deb; do
        [ "$old" = "$f" ] || rm -f "$old"
    done
}

# extract NAME VERSION: unpack once; sets EXTRACTED to the folder.
EXTRACTED=
extract() {
    local name=$1 version=$2 dir
    dir="$OUT/pkg/${name}_${version//:/%3a}"
    EXTRACTED=$dir
    if [ ! -e "$dir/.extracted" ]; then
        say "dpkg-deb -x $(basename "$(deb_file "$name" "$version")")"
        rm -rf "$dir"
        mkdir -p "$dir"
        dpkg-deb -x "$(deb_file "$name" "$version")" "$dir"
        touch "$dir/.extracted"
    fi
}

# ---- vmlinux out of a bzImage ------------------------------------------------
u8() { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '; }
u32() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }

# extract_vmlinux BZIMAGE OUT: the boot protocol header gives the offset and
# length of the compressed payload (setup header fields payload_offset at
# 0x248 and payload_length at 0x24c, relative to the protected-mode code that
# starts after the (setup_sects + 1) real-mode sectors). Debian's payload is
# XZ; if the header looks wrong, fall back to searching for the XZ magic.
extract_vmlinux() {
    local bz=$1 out=$2 magic setup_sects pm off len tmp="$2.tmp"
    magic=$(od -An -c -j $((0x202)) -N4 "$bz" | tr -d ' ')
    [ "$magic" = HdrS ] || die "$bz is not a bzImage (no HdrS signature)"
    setup_sects=$(u8 "$bz" $((0x1f1)))
    [ "$setup_sects" = 0 ] && setup_sects=4
    pm=$(((setup_sects + 1) * 512))
    off=$((pm + $(u32 "$bz" $((0x248)))))
    len=$(u32 "$bz" $((0x24c)))
    if [ "$(od -An -tx1 -j "$off" -N6 "$bz" | tr -d ' ')" != fd377a585a00 ]; then
        warn "payload_offset does not point at XZ data; searching for the XZ magic"
        off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$bz" | head -n 1 | cut -d: -f1)
        [ -n "$off" ] || die "no XZ payload found in $bz (other compressions are not supported)"
        len=$(($(stat -c %s "$bz") - off))
    fi
    # Through a file, not a pipe: with pipefail an early reader exit is an error.
    dd if="$bz" of="$tmp.xz" bs=1M iflag=skip_bytes,count_bytes skip="$off" count="$len" status=none ||
        die "cannot read the payload of $bz"
    xz -dc --single-stream "$tmp.xz" >"$tmp" || die "xz could not decompress the payload of $bz"
    rm -f "$tmp.xz"
    [ "$(od -An -c -N4 "$tmp" | tr -d ' ')" = 177ELF ] || die "the payload of $bz is not an ELF file"
    mv -f "$tmp" "$out"
}

# ---- modules --------------------------------------------------------------------
declare -A MOD_PATH=()   # module name (with '_') -> path of its .ko in the package
declare -A BUILTIN=()    # module names built into the kernel

index_modules() {
    local moddir=$1 f n
    while IFS= read -r -d '' f; do
        n=${f##*/}
        n=${n%.xz}
        n=${n%.ko}
        n=${n//-/_}
        MOD_PATH[$n]=$f
    done < <(find "$moddir/kernel" -name '*.ko' -print0 -o -name '*.ko.xz' -print0)
    if [ -r "$moddir/modules.builtin" ]; then
        while read -r f; do
            n=${f##*/}
            n=${n%.ko}
            BUILTIN[${n//-/_}]=1
        done <"$moddir/modules.builtin"
    fi
}

# The depends= field of a module's .modinfo section (comma separated).
module_depends() {
    local f=$1 tmp
    tmp=$(mktemp)
    case "$f" in
        *.xz) xz -dc "$f" >"$tmp.ko" ;;
        *) cp "$f" "$tmp.ko" ;;
    esac
    if command -v objcopy >/dev/null 2>&1 &&
        objcopy -O binary --only-section=.modinfo "$tmp.ko" "$tmp" 2>/dev/null; then
        tr '\0' '\n' <"$tmp" | sed -n 's/^depends=//p' | head -n 1
    else
        tr '\0' '\n' <"$tmp.ko" | sed -n 's/^depends=//p' | head -n 1
    fi
    rm -f "$tmp" "$tmp.ko"
}

# resolve_modules NAME...: prints the module files to load, dependencies first,
# in the order given otherwise; optional modules ("?name") keep their "?".
declare -A SEEN=()
RESOLVED=()
visit() {
    local n=${1//-/_} optional=$2 d deps
    [ -n "${SEEN[$n]:-}" ] && return 0
    SEEN[$n]=1
    if [ -z "${MOD_PATH[$n]:-}" ]; then
        [ -n "${BUILTIN[$n]:-}" ] && return 0
        [ "$optional" = 1 ] && { warn "optional module $n not in the kernel package"; return 0; }
        die "module $n is neither in the kernel package nor built in"
    fi
    deps=$(module_depends "${MOD_PATH[$n]}")
    for d in ${deps//,/ }; do visit "$d" "$optional"; done
    if [ "$optional" = 1 ]; then RESOLVED+=("?$n"); else RESOLVED+=("$n"); fi
}
resolve_modules() {
    SEEN=()
    RESOLVED=()
    local m
    for m in "$@"; do
        case "$m" in \?*) visit "${m#\?}" 1 ;; *) visit "$m" 0 ;; esac
    done
}

# ---- archive helpers ------------------------------------------------------------
# stage_busybox DIR: busybox and one symlink per applet in DIR/bin.
stage_busybox() {
    local dir=$1 applet
    mkdir -p "$dir/bin" "$dir/sbin" "$dir/usr/bin" "$dir/usr/sbin"
    cp "$BUSYBOX" "$dir/bin/busybox"
    for applet in $("$BUSYBOX" --list); do
        [ "$applet" = busybox ] && continue
        [ -e "$dir/bin/$applet" ] || ln -s busybox "$dir/bin/$applet"
    done
}

# stage_modules DIR NAME...: copy resolved modules into DIR/lib/modules and
# write DIR/etc/virga-modules (load order).
stage_modules() {
    local dir=$1 m n f
    shift
    resolve_modules "$@"
    mkdir -p "$dir/lib/modules" "$dir/etc"
    : >"$dir/etc/virga-modules"
    for m in "${RESOLVED[@]}"; do
        n=${m#\?}
        f=${MOD_PATH[$n]}
        case "$f" in
            *.xz) xz -dc "$f" >"$dir/lib/modules/$n.ko" ;;
            *) cp "$f" "$dir/lib/modules/$n.ko" ;;
        esac
        if [ "$m" != "$n" ]; then echo "?$n.ko"; else echo "$n.ko"; fi >>"$dir/etc/virga-modules"
    done
}

# skeleton DIR: the folders every image has, and /dev/console when we may mknod.
skeleton() {
    local dir=$1
    mkdir -p "$dir"/{dev,proc,sys,tmp,run,mnt,root,etc}
    chmod 1777 "$dir/tmp"
    if [ "$(id -u)" = 0 ]; then
        mknod -m 600 "$dir/dev/console" c 5 1 2>/dev/null || true
    fi
}

# make_cpio DIR OUT: gzip'd newc archive of DIR, entries owned by root.
make_cpio() {
    local dir=$1 out=$2
    (cd "$dir" && find . -print0 | LC_ALL=C sort -z |
        cpio --null -o -H newc -R 0:0 --quiet) | gzip -9n >"$out.tmp"
    mv -f "$out.tmp" "$out"
}

# ---- main --------------------------------------------------------------------------
mkdir -p "$OUT"
# Keep build output out of git even before the root .gitignore knows build/.
[ -e "$ROOT/build/.gitignore" ] || printf '*\n' >"$ROOT/build/.gitignore"

ensure_tools
ensure_apt_lists

KPKG=$(resolve_kernel_package)
[ -n "$KPKG" ] || die "cannot resolve linux-image-amd64 to a linux-image-6.1.0-NN-amd64 package (apt-cache depends linux-image-amd64)"
KVER=$(candidate_version "$KPKG")
BBVER=$(candidate_version busybox-static)
if [ -z "$KVER" ] || [ "$KVER" = "(none)" ]; then die "apt-cache has no version of $KPKG"; fi
if [ -z "$BBVER" ] || [ "$BBVER" = "(none)" ]; then die "apt-cache has no version of busybox-static"; fi

INPUTS_SUM=$(cat "$HERE/build.sh" "$HERE/guest-init.sh" "$HERE/guest-scenario.sh" "$HERE/l1-init.sh" \
    "$HERE"/virga-io/*.[ch] | md5sum | cut -d' ' -f1)
STAMP="kernel=$KPKG=$KVER busybox=$BBVER inputs=$INPUTS_SUM"
OUTPUTS=(linux/bzImage linux/vmlinux linux/initramfs.cpio.gz linux/rootfs.ext4
    l1/bzImage l1/vmlinux l1/initramfs.cpio.gz l1-vfio/etc/virga-modules tools/virga-io manifest.env manifest.json)
all_outputs() {
    local o
    for o in "${OUTPUTS[@]}"; do [ -s "$OUT/$o" ] || return 1; done
}
if [ "$FORCE" = 0 ] && [ "$(cat "$OUT/.stamp" 2>/dev/null)" = "$STAMP" ] && all_outputs; then
    echo "virga-images: up to date ($KPKG $KVER, busybox-static $BBVER) in ${OUT#"$ROOT"/}"
    exit 0
fi

# Download (refreshing the package lists once if the mirror moved on).
if ! download "$KPKG" "$KVER" || ! download busybox-static "$BBVER"; then
    apt_update
    KPKG=$(resolve_kernel_package)
    KVER=$(candidate_version "$KPKG")
    BBVER=$(candidate_version busybox-static)
    download "$KPKG" "$KVER" || die "apt-get download $KPKG=$KVER failed"
    download busybox-static "$BBVER" || die "apt-get download busybox-static=$BBVER failed"
    STAMP="kernel=$KPKG=$KVER busybox=$BBVER inputs=$INPUTS_SUM"
fi

extract "$KPKG" "$KVER"
KDIR=$EXTRACTED
extract busybox-static "$BBVER"
BBDIR=$EXTRACTED
BUSYBOX="$BBDIR/bin/busybox"
[ -x "$BUSYBOX" ] || die "busybox-static package has no bin/busybox"
KREL=${KPKG#linux-image-}
MODDIR="$KDIR/lib/modules/$KREL"
[ -d "$MODDIR/kernel" ] || die "$KPKG has no lib/modules/$KREL/kernel"
VMLINUZ="$KDIR/boot/vmlinuz-$KREL"
[ -s "$VMLINUZ" ] || die "$KPKG has no boot/vmlinuz-$KREL"

mkdir -p "$OUT/linux" "$OUT/l1" "$OUT/tools"
WORK="$OUT/work"
rm -rf "$WORK"
mkdir -p "$WORK"

# Static, so that the busybox guest (no libc) runs it, and L1 runs the same
# file from the host's tree (libc.a is in libc6-dev: ensure_tools sees to it).
say "virga-io: gcc -static"
gcc -static -O2 -s -Wall -pthread -o "$OUT/tools/virga-io.tmp" "$HERE"/virga-io/*.c ||
    die "cannot build virga-io statically (gcc and libc6-dev, which has libc.a, are needed)"
mv -f "$OUT/tools/virga-io.tmp" "$OUT/tools/virga-io"

# install_scenario_tools DIR: what the device scenarios run in the guest.
install_scenario_tools() {
    install -m 755 "$HERE/guest-scenario.sh" "$1/bin/virga-scenario"
    install -m 755 "$OUT/tools/virga-io" "$1/bin/virga-io"
}

say "kernel $KPKG $KVER: bzImage and vmlinux"
cp -f "$VMLINUZ" "$OUT/linux/bzImage.tmp"
mv -f "$OUT/linux/bzImage.tmp" "$OUT/linux/bzImage"
extract_vmlinux "$OUT/linux/bzImage" "$OUT/linux/vmlinux"
ln -sfn ../linux/bzImage "$OUT/l1/bzImage"
ln -sfn ../linux/vmlinux "$OUT/l1/vmlinux"

index_modules "$MODDIR"

say "L2 initramfs: busybox $BBVER, modules ${L2_MODULES[*]}"
S="$WORK/initramfs"
skeleton "$S"
stage_busybox "$S"
stage_modules "$S" "${L2_MODULES[@]}"
say "  load order: $(tr '\n' ' ' <"$S/etc/virga-modules")"
install -m 755 "$HERE/guest-init.sh" "$S/init"
install_scenario_tools "$S"
echo initramfs >"$S/etc/virga-stage"
make_cpio "$S" "$OUT/linux/initramfs.cpio.gz"

say "L2 root filesystem: 64 MiB ext4"
S="$WORK/rootfs"
skeleton "$S"
stage_busybox "$S"
install -m 755 "$HERE/guest-init.sh" "$S/sbin/init"
install_scenario_tools "$S"
echo rootfs >"$S/etc/virga-stage"
echo virga-guest >"$S/etc/hostname"
rm -f "$OUT/linux/rootfs.ext4.tmp"
truncate -s 64M "$OUT/linux/rootfs.ext4.tmp"
mkfs.ext4 -q -F -L virga-root -E root_owner=0:0 -d "$S" "$OUT/linux/rootfs.ext4.tmp" ||
    die "mkfs.ext4 -d failed (e2fsprogs 1.43 or newer is needed)"
mv -f "$OUT/linux/rootfs.ext4.tmp" "$OUT/linux/rootfs.ext4"

say "L1 initramfs: modules ${L1_MODULES[*]}"
S="$WORK/l1"
skeleton "$S"
stage_busybox "$S"
stage_modules "$S" "${L1_MODULES[@]}"
say "  load order: $(tr '\n' ' ' <"$S/etc/virga-modules")"
install -m 755 "$HERE/l1-init.sh" "$S/init"
make_cpio "$S" "$OUT/l1/initramfs.cpio.gz"

say "L1 VFIO modules: ${VFIO_MODULES[*]}"
rm -rf "$OUT/l1-vfio"
stage_modules "$OUT/l1-vfio" "${VFIO_MODULES[@]}"

cat >"$OUT/manifest.env" <<EOF
# Written by apps/host/test/images/build.sh
VIRGA_GUEST_KERNEL_PACKAGE=$KPKG
VIRGA_GUEST_KERNEL_VERSION=$KVER
VIRGA_GUEST_KERNEL_RELEASE=$KREL
VIRGA_GUEST_BUSYBOX_VERSION=$BBVER
VIRGA_GUEST_BZIMAGE=$OUT/linux/bzImage
VIRGA_GUEST_VMLINUX=$OUT/linux/vmlinux
VIRGA_GUEST_INITRD_DEFAULT=$OUT/linux/initramfs.cpio.gz
VIRGA_GUEST_ROOTFS_DEFAULT=$OUT/linux/rootfs.ext4
VIRGA_L1_KERNEL_DEFAULT=$OUT/l1/vmlinux
VIRGA_L1_INITRD_DEFAULT=$OUT/l1/initramfs.cpio.gz
VIRGA_IO=$OUT/tools/virga-io
EOF
cat >"$OUT/manifest.json" <<EOF
{
  "kernelPackage": "$KPKG",
  "kernelVersion": "$KVER",
  "kernelRelease": "$KREL",
  "busyboxVersion": "$BBVER",
  "bzImage": "$OUT/linux/bzImage",
  "vmlinux": "$OUT/linux/vmlinux",
  "initramfs": "$OUT/linux/initramfs.cpio.gz",
  "rootfs": "$OUT/linux/rootfs.ext4",
  "l1Kernel": "$OUT/l1/vmlinux",
  "l1Initramfs": "$OUT/l1/initramfs.cpio.gz",
  "virgaIo": "$OUT/tools/virga-io"
}
EOF
# The unpacked kernel package is ~400 MB; the .deb stays in $DEBS.
rm -rf "$WORK" "$OUT/pkg" "$OUT/debs"
echo "$STAMP" >"$OUT/.stamp"

echo "virga-images: built ($KPKG $KVER, busybox-static $BBVER) in ${OUT#"$ROOT"/}:"
for o in "${OUTPUTS[@]}"; do
    printf '  %-26s %s\n' "$o" "$(du -hL "$OUT/$o" | cut -f1)"
done
