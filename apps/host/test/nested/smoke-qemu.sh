#!/usr/bin/env bash
# smoke-qemu: boot the Debian test guest under Debian's QEMU with -enable-kvm
# inside the nested harness, and check what a Linux test of virga-vmm checks.
#
# Usage (on the host):
#   apps/host/test/nested/smoke-qemu.sh [--runs N] [--keep] [--verbose]
#     --runs N    boot the plain initramfs guest N times for the timing (default 1)
#     --keep      keep the results folder (logs, the written disk)
#     --verbose   pass --verbose to run-in-l1.sh (L1 console on stderr)
#
# It starts one L1 (run-in-l1.sh), and inside it QEMU microvm boots:
#   1. initramfs, 1 vCPU           -> "VIRGA-GUEST ready", cpus=1, exit 0 (timed, --runs times)
#   2. initramfs, 2 vCPUs + a second disk, virga.write=/dev/vdb
#                                  -> cpus=2, "wrote /dev/vdb"; the disk file read back
#                                     afterwards holds the pattern (checked in L1 and on the host)
#   3. the seed's command line + initramfs, root=/dev/vda (copy of rootfs.ext4)
#                                  -> "VIRGA-GUEST rootfs ready", exit 0
#   4. reboot=k, virga.action=reboot with -no-reboot (and -device i8042, which
#      QEMU's microvm lacks) -> exit 0
#   5. virtio-net on a tap that is a port of a bridge in L1, and a balloon;
#      the guest's virga.run= commands give eth0 an address, ping L1, send
#      L1 8 MiB over TCP (virga-io) and print its memory -> all seen, exit 0
# Prints one "PASS name ..." or "FAIL name ..." line per check, the timings,
# and "N passed, N failed"; exits 0 only when everything passed.
#
# Guest files: VIRGA_GUEST_KERNEL (default build/guests/linux/vmlinux),
# VIRGA_GUEST_INITRD, VIRGA_GUEST_ROOTFS (see apps/host/test/images/README.md).

# shellcheck disable=SC2054,SC2317  # QEMU options contain commas; trap handlers
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../../.." && pwd)
PATTERN_BYTES=3908

RUNS=1
KEEP=0
VERBOSE=
INSIDE=
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --verbose) VERBOSE=--verbose; shift ;;
        --inside) INSIDE=$2; shift 2 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "smoke-qemu: unknown option '$1'" >&2; exit 2 ;;
    esac
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "smoke-qemu: --runs must be a positive number" >&2; exit 2; }

KERNEL=${VIRGA_GUEST_KERNEL:-$ROOT/build/guests/linux/vmlinux}
INITRD=${VIRGA_GUEST_INITRD:-$ROOT/build/guests/linux/initramfs.cpio.gz}
ROOTFS=${VIRGA_GUEST_ROOTFS:-$ROOT/build/guests/linux/rootfs.ext4}

expected_pattern() { echo VIRGA-WRITE-OK; seq 1 1000; }

# ---------------------------------------------------------------- host side --
if [ -z "$INSIDE" ]; then
    for f in "$KERNEL" "$INITRD" "$ROOTFS"; do
        [ -s "$f" ] || { echo "smoke-qemu: $f missing (run apps/host/test/images/build.sh)" >&2; exit 90; }
    done
    RES=$(mktemp -d "${TMPDIR:-/tmp}/virga-smoke.XXXXXX")
    "$HERE/run-in-l1.sh" --timing $VERBOSE --timeout "${VIRGA_SMOKE_TIMEOUT:-900}" --log "$RES/l1-console.log" --share "$RES" -- \
        "$HERE/smoke-qemu.sh" --runs "$RUNS" --inside "$RES" 2> >(tee "$RES/harness.err" >&2)
    rc=$?
    sleep 0.1
    # The write test's disk, read back on this side too.
    if [ -f "$RES/vdb.img" ]; then
        if cmp -s <(expected_pattern) <(head -c $PATTERN_BYTES "$RES/vdb.img"); then
            echo "PASS host-readback: $RES/vdb.img starts with the pattern"
        else
            echo "FAIL host-readback: $RES/vdb.img does not start with the pattern"
            [ "$rc" = 0 ] && rc=1
        fi
    elif [ "$rc" = 0 ]; then
        echo "FAIL host-readback: no vdb.img in $RES"
        rc=1
    fi
    boot=$(sed -n 's/^VIRGA-L1-TIMING boot=\([^ ]*\).*/\1/p' "$RES/harness.err")
    [ -n "$boot" ] && echo "timing: L1 start -> command running: ${boot}s"
    if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then
        echo "results kept in $RES"
    else
        rm -rf "$RES"
    fi
    exit "$rc"
fi

# --------------------------------------------------------------- inside L1 ---
RES=$INSIDE
[ -c /dev/kvm ] || { echo "FAIL no /dev/kvm (run this through run-in-l1.sh)"; exit 90; }
QEMU=${VIRGA_L2_QEMU:-qemu-system-x86_64}
SCRATCH=$(mktemp -d /tmp/l2.XXXXXX)
passed=0
failed=0
pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }

# boot NAME TIMEOUT QEMU-ARGS...: runs QEMU, keeps a timestamped console log
# in $RES/NAME.log; sets BOOT_RC and READY (seconds from QEMU start to the
# first "VIRGA-GUEST ... ready" line, empty if none).
boot() {
    local name=$1 to=$2 t0 line
    shift 2
    t0=$EPOCHREALTIME
    timeout -k 5 "$to" "$QEMU" -enable-kvm -cpu host -nodefaults -no-user-config \
        -display none -no-reboot -serial stdio "$@" </dev/null 2>&1 |
        while IFS= read -r line; do
            printf '%s %s\n' "$EPOCHREALTIME" "${line%$'\r'}"
        done >"$RES/$name.log"
    BOOT_RC=${PIPESTATUS[0]}
    READY=$(awk -v t0="$t0" '/VIRGA-GUEST (rootfs )?ready/ { printf "%.2f", $1 - t0; exit }' "$RES/$name.log")
}
has() { grep -q -- "$2" "$RES/$1.log"; }
uptime_at_ready() { awk '/VIRGA-GUEST uptime=/ { sub(/.*uptime=/, ""); print; exit }' "$RES/$1.log"; }

MICROVM=(-M microvm,rtc=on -m 1024)
# pci=off: microvm has no PCI, and probing for it costs ~2 s of port exits.
APPEND_BASE="console=ttyS0 quiet pci=off"

# 1. plain initramfs boot, timed
times=()
for i in $(seq 1 "$RUNS"); do
    n=initramfs-1cpu-$i
    boot "$n" 120 "${MICROVM[@]}" -smp 1 -kernel "$KERNEL" -initrd "$INITRD" \
        -append "$APPEND_BASE virga.action=poweroff"
    if [ "$BOOT_RC" = 0 ] && [ -n "$READY" ] && has "$n" 'VIRGA-GUEST cpus=1'; then
        pass "$n: ready after ${READY}s (guest uptime $(uptime_at_ready "$n")s), cpus=1, exit 0"
        times+=("$READY")
    else
        fail "$n: rc=$BOOT_RC ready=${READY:-none}"
        tail -n 15 "$RES/$n.log"
    fi
done

# 2. two vCPUs and a second disk that the guest writes
truncate -s 16M "$SCRATCH/vdb.img"
n=initramfs-2cpu-write
boot "$n" 120 "${MICROVM[@]}" -smp 2 -kernel "$KERNEL" -initrd "$INITRD" \
    -append "$APPEND_BASE virga.write=/dev/vdb" \
    -drive "file=$ROOTFS,if=none,id=d0,format=raw,readonly=on" -device virtio-blk-device,drive=d0 \
    -drive "file=$SCRATCH/vdb.img,if=none,id=d1,format=raw" -device virtio-blk-device,drive=d1
if [ "$BOOT_RC" = 0 ] && has "$n" 'VIRGA-GUEST cpus=2' && has "$n" 'VIRGA-GUEST disks=vda,vdb' &&
    has "$n" 'VIRGA-GUEST wrote /dev/vdb bytes=3908'; then
    pass "$n: ready after ${READY}s, cpus=2, disks=vda,vdb, wrote /dev/vdb"
else
    fail "$n: rc=$BOOT_RC"
    tail -n 15 "$RES/$n.log"
fi
if cmp -s <(expected_pattern) <(head -c $PATTERN_BYTES "$SCRATCH/vdb.img"); then
    pass "l1-readback: the disk holds the pattern after power-off"
else
    fail "l1-readback: the disk does not hold the pattern"
    head -c 64 "$SCRATCH/vdb.img" | od -c | head -n 4
fi
cp "$SCRATCH/vdb.img" "$RES/vdb.img"

# 3. the seed's microvm command line plus an initramfs that switches to /dev/vda
cp "$ROOTFS" "$SCRATCH/rootfs.ext4"
n=rootfs-seed
boot "$n" 120 -M microvm,rtc=on -kernel "$KERNEL" -initrd "$INITRD" -smp 1 -m 1024 \
    -append "console=ttyS0 pci=off reboot=k quiet panic=1 root=/dev/vda" \
    -drive "file=$SCRATCH/rootfs.ext4,if=none,id=rootfs,format=raw,readonly=off" \
    -device virtio-blk-device,drive=rootfs
if [ "$BOOT_RC" = 0 ] && has "$n" 'VIRGA-GUEST rootfs ready' && has "$n" 'VIRGA-GUEST root=/dev/vda ext4 rw'; then
    pass "$n: rootfs ready after ${READY}s, root=/dev/vda ext4 rw, exit 0"
else
    fail "$n: rc=$BOOT_RC ready=${READY:-none}"
    tail -n 15 "$RES/$n.log"
fi

# 4. reboot=k with a reboot request ends QEMU (-no-reboot) with 0. QEMU's
# microvm has no i8042 of its own (reboot=k would spin): add one.
n=reboot-k
boot "$n" 120 "${MICROVM[@]}" -device i8042 -smp 1 -kernel "$KERNEL" -initrd "$INITRD" \
    -append "$APPEND_BASE reboot=k virga.action=reboot"
if [ "$BOOT_RC" = 0 ] && has "$n" 'VIRGA-GUEST action=reboot'; then
    pass "$n: ready after ${READY}s, rebooted, exit 0"
else
    fail "$n: rc=$BOOT_RC"
    tail -n 15 "$RES/$n.log"
fi

# 5. a NIC on a bridge in L1 (the L1 image's bridge and tun modules) and a
# balloon, driven by the guest's virga.run= commands alone.
IO=$ROOT/build/guests/tools/virga-io
n=net-bridge
if ip link add vsmoke-br type bridge && ip addr add 192.168.77.1/24 dev vsmoke-br && ip link set vsmoke-br up &&
    ip tuntap add dev vsmoke-tap mode tap && ip link set vsmoke-tap master vsmoke-br && ip link set vsmoke-tap up; then
    "$IO" tcp-recv 5201 >"$RES/$n-l1.txt" 2>&1 &
    recv=$!
    boot "$n" 120 "${MICROVM[@]}" -smp 1 -kernel "$KERNEL" -initrd "$INITRD" \
        -append "$APPEND_BASE virga.run=net-up,eth0,192.168.77.2/24 virga.run=ping,192.168.77.1 virga.run=io,tcp-send,192.168.77.1,5201,8 virga.run=mem" \
        -netdev tap,id=n0,ifname=vsmoke-tap,script=no,downscript=no,vhost=off -device virtio-net-device,netdev=n0 \
        -device virtio-balloon-device
    kill "$recv" 2>/dev/null
    wait "$recv" 2>/dev/null
    if [ "$BOOT_RC" = 0 ] && has "$n" 'VIRGA-GUEST net-up eth0 addr=192.168.77.2/24' &&
        has "$n" 'VIRGA-GUEST ping 192.168.77.1 received=' && has "$n" 'VIRGA-GUEST io tcp-send bytes=8388608' &&
        has "$n" 'VIRGA-GUEST mem total=' && grep -q 'VIRGA-IO tcp-recv bytes=8388608' "$RES/$n-l1.txt"; then
        pass "$n: eth0 on a bridge in L1, ping and 8 MiB over TCP ($(sed -n 's/.*MB\/s=\([0-9.]*\).*/\1/p' "$RES/$n-l1.txt") MB/s), with a balloon device"
    else
        fail "$n: rc=$BOOT_RC"
        tail -n 15 "$RES/$n.log"
        cat "$RES/$n-l1.txt"
    fi
else
    fail "$n: cannot make a bridge with a tap in L1 (bridge/tun modules missing from the L1 image?)"
fi
ip link del vsmoke-tap 2>/dev/null
ip link del vsmoke-br 2>/dev/null

rm -rf "$SCRATCH"
if [ "${#times[@]}" -gt 0 ]; then
    median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
    echo "timing: QEMU start -> VIRGA-GUEST ready (1 vCPU, microvm, $(basename "$KERNEL")): ${times[*]} s; median ${median}s"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
