#!/bin/sh
# The guest's side of Virga's device scenarios (busybox sh), installed as
# /bin/virga-scenario in the L2 initramfs and root filesystem. guest-init.sh
# runs it for each virga.run= on the kernel command line; a test can also
# type it on the console of a guest booted with virga.action=stay.
#
#   virga-scenario COMMAND [ARG...]
#
# Every command ends with exactly one line "VIRGA-GUEST <command> ..." when
# it worked, or "VIRGA-GUEST error <command>: <why>" when not (exit 1).
# README.md beside this file lists the commands and their lines.

export PATH=/sbin:/bin:/usr/sbin:/usr/bin

m() { echo "VIRGA-GUEST $*"; }
cmd=${1:-}
[ $# -gt 0 ] && shift
fail() {
    m "error $cmd: $*"
    exit 1
}

# wait_for SECONDS TEST...: runs TEST every 0.1 s until it succeeds.
wait_for() {
    tries=$(($1 * 10))
    shift
    while ! "$@"; do
        tries=$((tries - 1))
        [ $tries -gt 0 ] || return 1
        sleep 0.1
    done
}

sectors() { cat "/sys/block/${1#/dev/}/size" 2>/dev/null || echo 0; }
has_data() { [ -b "$1" ] && [ "$(sectors "$1")" -gt 0 ]; }
is_empty() { [ ! -e "/sys/block/${1#/dev/}" ] || [ "$(sectors "$1")" = 0 ]; }

# Printable ASCII is spelled ' -~' for tr: busybox 1.35's `tr -cd
# '[:print:]'` deletes everything.

# The write pattern of the tests: "VIRGA-WRITE-OK\n" then 1..1000, one a line.
pattern() { echo VIRGA-WRITE-OK; seq 1 1000; }

# An idle virtio-mmio slot, freed for /dev/mem: prints "<base> <name>".
# Debian's kernel has IO_STRICT_DEVMEM, so no driver may hold any slot in
# the page that holds it: slots nothing is bound to (a transport with
# device id 0) are taken as they are; a bound virtio-blk of capacity 0 (an
# empty block slot of virga-vmm) is unbound; a page with a device in use is
# skipped.
slot_base() { awk -v n="$1" '$NF == n { split($1, r, "-"); print r[1]; exit }' /proc/iomem; }
slot_idle() {
    local d=/sys/bus/platform/devices/$1 b
    [ -e "$d/driver" ] || return 0
    for b in "$d"/virtio*/block/*; do
        [ -e "$b/size" ] && [ "$(cat "$b/size")" = 0 ] && return 0
    done
    return 1
}
free_slot() {
    local d name base page ok peers p pb
    for d in /sys/bus/platform/devices/LNRO0005:*; do
        [ -e "$d" ] || continue
        name=${d##*/}
        slot_idle "$name" || continue
        base=$(slot_base "$name")
        [ -n "$base" ] || continue
        page=$(printf '%x' $((0x$base & ~0xfff)))
        ok=1
        peers=
        for p in /sys/bus/platform/devices/LNRO0005:*; do
            pb=$(slot_base "${p##*/}")
            [ -n "$pb" ] || continue
            [ "$(printf '%x' $((0x$pb & ~0xfff)))" = "$page" ] || continue
            [ -e "$p/driver" ] || continue
            if slot_idle "${p##*/}"; then peers="$peers ${p##*/}"; else ok=; break; fi
        done
        [ -n "$ok" ] || continue
        for p in $peers; do
            echo "$p" >"/sys/bus/platform/devices/$p/driver/unbind" || return 1
        done
        echo "0x$base $name"
        return 0
    done
    return 1
}

case "$cmd" in
    net-up)
        # net-up IFACE ADDR/PREFIX [SECONDS]: wait for the interface, give it
        # the address, bring it up and wait for carrier (a hot-plugged NIC's
        # link comes up when the VMM attaches its tap).
        [ $# -ge 2 ] || fail "usage: net-up IFACE ADDR/PREFIX [SECONDS]"
        ifc=$1 addr=$2 secs=${3:-30}
        wait_for "$secs" test -e "/sys/class/net/$ifc" || fail "no interface $ifc after ${secs}s"
        ip addr flush dev "$ifc" 2>/dev/null
        ip addr add "$addr" dev "$ifc" || fail "ip addr add $addr dev $ifc failed"
        ip link set "$ifc" up || fail "ip link set $ifc up failed"
        carrier() { [ "$(cat "/sys/class/net/$ifc/carrier" 2>/dev/null)" = 1 ]; }
        wait_for "$secs" carrier || fail "$ifc has no carrier after ${secs}s"
        m "net-up $ifc addr=$addr mac=$(cat "/sys/class/net/$ifc/address") carrier=1"
        ;;
    ping)
        # ping PEER [COUNT]: the reply count and round trips.
        [ $# -ge 1 ] || fail "usage: ping PEER [COUNT]"
        out=$(ping -c "${2:-3}" -W 5 "$1" 2>&1)
        received=$(echo "$out" | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')
        rtt=$(echo "$out" | sed -n 's/.*min\/avg\/max = \([0-9.\/]*\).*/\1/p')
        [ "${received:-0}" -gt 0 ] || fail "no reply from $1: $(echo "$out" | tail -n 2 | tr '\n' ' ')"
        m "ping $1 received=$received rtt-ms=$rtt"
        ;;
    io)
        # io VIRGA-IO-ARGS...: virga-io's own lines, then its result again.
        out=$(mktemp)
        virga-io "$@" 2>&1 | tee "$out"
        line=$(grep '^VIRGA-IO ' "$out" | grep -v ' listening ' | tail -n 1)
        err=$(grep '^virga-io: ' "$out" | head -n 1)
        rm -f "$out"
        [ -z "$err" ] && [ -n "$line" ] || fail "${err:-virga-io $* printed no result}"
        m "io ${line#VIRGA-IO }"
        ;;
    wait-disk)
        # wait-disk DEV [SECONDS]: until DEV has a capacity (a hot-plugged
        # disk is a new device under QEMU's PCI, a capacity change from 0 in
        # a virga-vmm slot that exists from boot).
        [ $# -ge 1 ] || fail "usage: wait-disk DEV [SECONDS]"
        wait_for "${2:-30}" has_data "$1" || fail "$1 has no data after ${2:-30}s"
        m "wait-disk $1 sectors=$(sectors "$1") ro=$(cat "/sys/block/${1#/dev/}/ro")"
        ;;
    wait-disk-gone)
        # wait-disk-gone DEV [SECONDS]: until DEV is gone or of capacity 0.
        [ $# -ge 1 ] || fail "usage: wait-disk-gone DEV [SECONDS]"
        wait_for "${2:-30}" is_empty "$1" || fail "$1 still has $(sectors "$1") sectors after ${2:-30}s"
        if [ -e "/sys/block/${1#/dev/}" ]; then m "wait-disk-gone $1 sectors=0"; else m "wait-disk-gone $1 removed"; fi
        ;;
    read-disk)
        # read-disk DEV [KIB]: MD5 of the first KIB KiB (default 1024) as
        # the device holds them now (the page cache dropped first), and the
        # first line there.
        [ $# -ge 1 ] || fail "usage: read-disk DEV [KIB]"
        [ -b "$1" ] || fail "$1: no such block device"
        kib=${2:-1024}
        blockdev --flushbufs "$1" 2>/dev/null
        dd if="$1" of=/tmp/virga-read bs=1024 count="$kib" 2>/dev/null || fail "$1: dd failed"
        sum=$(md5sum </tmp/virga-read | cut -d' ' -f1)
        first=$(head -n 1 /tmp/virga-read | tr -cd ' -~' | cut -c 1-64)
        rm -f /tmp/virga-read
        m "read-disk $1 kib=$kib md5=$sum first=$first"
        ;;
    write)
        # write DEV [SEEK_KIB]: the pattern at SEEK_KIB KiB (default 0), flushed.
        [ $# -ge 1 ] || fail "usage: write DEV [SEEK_KIB]"
        [ -b "$1" ] || fail "$1: no such block device"
        pattern >/tmp/virga-pattern
        dd if=/tmp/virga-pattern of="$1" bs=1024 seek="${2:-0}" conv=fsync,notrunc 2>/dev/null ||
            fail "$1: dd failed"
        sync
        blockdev --flushbufs "$1" 2>/dev/null
        m "wrote $1 bytes=$(wc -c </tmp/virga-pattern) md5=$(md5sum </tmp/virga-pattern | cut -d' ' -f1)"
        ;;
    read)
        # read DEV: the first line stored on the device.
        [ $# -ge 1 ] || fail "usage: read DEV"
        [ -b "$1" ] || fail "$1: no such block device"
        m "read $1: $(head -c 256 "$1" | head -n 1 | tr -cd ' -~' | cut -c 1-64)"
        ;;
    wait-nic-down)
        # wait-nic-down IFACE [SECONDS]: until IFACE is gone (a PCI NIC
        # unplugged) or has no carrier (a virga-vmm NIC slot emptied).
        [ $# -ge 1 ] || fail "usage: wait-nic-down IFACE [SECONDS]"
        nic_down() { [ ! -e "/sys/class/net/$1" ] || [ "$(cat "/sys/class/net/$1/carrier" 2>/dev/null)" != 1 ]; }
        wait_for "${2:-30}" nic_down "$1" || fail "$1 still has carrier after ${2:-30}s"
        if [ -e "/sys/class/net/$1" ]; then m "wait-nic-down $1 carrier=0"; else m "wait-nic-down $1 removed"; fi
        ;;
    touch-mem)
        # touch-mem MIB: write MIB MiB to a tmpfs and drop it again: the VMM
        # then holds that much more guest RAM, now free in the guest.
        # The initramfs's own tmpfs may hold only half of RAM: a mount of its own.
        [ $# -ge 1 ] || fail "usage: touch-mem MIB"
        mkdir -p /run/virga-fill
        mount -t tmpfs -o "size=$(($1 + 1))m" virga-fill /run/virga-fill || fail "cannot mount a tmpfs"
        dd if=/dev/zero of=/run/virga-fill/data bs=1M count="$1" 2>/dev/null
        rc=$?
        umount /run/virga-fill
        [ $rc = 0 ] || fail "cannot write $1 MiB to a tmpfs"
        m "touch-mem mib=$1"
        ;;
    mem)
        # mem: MemTotal, MemFree, MemAvailable in kB.
        m "mem $(awk '/^MemTotal:/ { t = $2 } /^MemFree:/ { f = $2 } /^MemAvailable:/ { a = $2 }
            END { print "total=" t " free=" f " available=" a }' /proc/meminfo)"
        ;;
    mmio-lat)
        # mmio-lat [COUNT] [LOAD_DEV|-] [ADDR]: times reads of a slot's
        # InterruptStatus, optionally with LOAD_DEV kept busy. Without ADDR
        # an idle slot the firmware announces is freed (above); ADDR names
        # one the caller knows to be free (QEMU's microvm announces only
        # the transports it filled, and packs them into one page).
        if [ -n "${3:-}" ]; then
            slot="$3 given"
        else
            slot=$(free_slot) || fail "no idle virtio-mmio slot in a page no driver holds (IO_STRICT_DEVMEM)"
        fi
        load=${2:-}
        [ "$load" != - ] || load=
        set -- "${slot%% *}" "${1:-20000}" 0x60 ${load:+--load "$load"}
        out=$(virga-io mmio-lat "$@" 2>&1) || fail "${slot#* }: $out"
        echo "$out"
        m "mmio-lat slot=${slot#* } ${out#VIRGA-IO mmio-lat }"
        ;;
    *)
        fail "unknown command (net-up ping io wait-disk wait-disk-gone wait-nic-down read-disk write read touch-mem mem mmio-lat)"
        ;;
esac
