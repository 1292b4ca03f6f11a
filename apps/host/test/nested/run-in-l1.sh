#!/usr/bin/env bash
# run-in-l1: run a host command inside an L1 machine that has a real /dev/kvm.
#
# Usage:
#   run-in-l1.sh [options] -- COMMAND [ARG...]
#
# Options:
#   --cpus N          L1 vCPUs (default 2)
#   --mem MiB         L1 memory (default 4096)
#   --share DIR       share a host folder read-write at the same path in L1
#                     (repeatable); use it for result files
#   --timeout SEC     wall-clock limit for the whole run (default 1800, 0 = none)
#   --boot-timeout SEC  L1 must start the command within SEC (default 90, 0 = no
#                     limit); a stalled boot is killed and L1 booted again
#   --boot-attempts N how many boots to try (default 2)
#   --heartbeat-timeout SEC  L1 counts as hung (exit 91) when its heartbeat
#                     (written every 5 s while the command runs) is older than
#                     SEC (default 120, 0 = never); after 20 s without one
#                     (VIRGA_L1_NUDGE_AFTER) L1 is sent an NMI, to wake vCPUs
#                     halted on an interrupt the emulator lost
#   --machine M       L1 machine: microvm (default), q35, or q35-vfio (q35 with an
#                     emulated Intel IOMMU and QEMU's edu device, for VFIO)
#   --timing          print "VIRGA-L1-TIMING boot=S command=S total=S" on stderr
#   --verbose         copy the L1 console (kernel and init messages) to stderr
#   --log FILE        keep the L1 console log in FILE
#   --keep            keep the temporary job folder (its path is printed)
#
# L1 is Debian's kernel (build/guests/l1/vmlinux, entered through PVH, which
# skips the slow in-guest decompression) with the harness initramfs
# (build/guests/l1/initramfs.cpio.gz) in QEMU software emulation
# (-accel tcg,thread=multi -cpu max,la57=off,erms=off,fsrm=off: AMD SVM with
# nested paging; without ERMS and FSRM the L1 and L2 kernels clear and copy
# pages with rep stosq/movsq, which TCG runs 8 times fewer iterations of than
# the byte-wise rep stosb/movsb: Linux boots in L1 about a quarter faster).
# The host's root filesystem is shared read-only through virtio-9p with a
# tmpfs overlay on top (writes inside L1 are private and vanish), /proc /sys
# /dev /tmp /run are fresh, /dev/kvm is hardware-style KVM, and COMMAND runs
# as root in the caller's working directory with the caller's environment
# plus VIRGA_IN_L1=1. Its stdout and stderr come back on this script's stdout
# and stderr (virtio-serial); this script exits with its exit status.
#
# Exit status: the command's, or
#   90  the harness could not start the command (no QEMU, images missing,
#       no /dev/kvm in L1, a mount failed, L1 died before the command ran)
#   91  L1 stopped while the command ran (kernel panic, lockup, or hung with
#       every vCPU halted: no heartbeat) without reporting an exit status
#   124 the --timeout expired (L1 is killed)
#   2   bad usage
# Reasons are printed on stderr as lines starting with "virga-l1: ".
#
# Environment:
#   VIRGA_L1_KERNEL, VIRGA_L1_INITRD   override the L1 kernel / initramfs
#   VIRGA_L1_QEMU                      the QEMU binary (default qemu-system-x86_64)
#   VIRGA_L1_CPU                       QEMU -cpu for L1 (default
#                                      max,la57=off,erms=off,fsrm=off)
#   VIRGA_L1_TIMEOUT                   default for --timeout
#   VIRGA_L1_BOOT_TIMEOUT, VIRGA_L1_BOOT_ATTEMPTS, VIRGA_L1_HEARTBEAT_TIMEOUT
#                                      defaults for those options
#   VIRGA_L1_NICE                      run QEMU under nice -n VALUE (default 0)
#   VIRGA_L1_VERBOSE=1                 same as --verbose
#   VIRGA_L1_APPEND                    extra L1 kernel command line arguments

# shellcheck disable=SC2054,SC2317  # QEMU options contain commas; trap handlers
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../../.." && pwd)

E_HARNESS=90
E_LOST=91
E_TIMEOUT=124

say() { echo "virga-l1: $*" >&2; }
usage() { say "$*"; say "usage: run-in-l1.sh [--cpus N] [--mem MiB] [--share DIR]... [--timeout SEC] [--boot-timeout SEC] [--boot-attempts N] [--machine microvm|q35|q35-vfio] [--timing] [--verbose] [--log FILE] [--keep] -- COMMAND [ARG...]"; exit 2; }

CPUS=2
MEM=4096
SHARES=()
TIMEOUT=${VIRGA_L1_TIMEOUT:-1800}
BOOT_TIMEOUT=${VIRGA_L1_BOOT_TIMEOUT:-90}
BOOT_ATTEMPTS=${VIRGA_L1_BOOT_ATTEMPTS:-2}
HEARTBEAT_TIMEOUT=${VIRGA_L1_HEARTBEAT_TIMEOUT:-120}
NUDGE_AFTER=${VIRGA_L1_NUDGE_AFTER:-20}
MACHINE=microvm
TIMING=0
VERBOSE=${VIRGA_L1_VERBOSE:-0}
LOG=
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --cpus) [ $# -ge 2 ] || usage "--cpus needs a value"; CPUS=$2; shift 2 ;;
        --mem) [ $# -ge 2 ] || usage "--mem needs a value"; MEM=$2; shift 2 ;;
        --share) [ $# -ge 2 ] || usage "--share needs a folder"; SHARES+=("$2"); shift 2 ;;
        --timeout) [ $# -ge 2 ] || usage "--timeout needs seconds"; TIMEOUT=$2; shift 2 ;;
        --boot-timeout) [ $# -ge 2 ] || usage "--boot-timeout needs seconds"; BOOT_TIMEOUT=$2; shift 2 ;;
        --heartbeat-timeout) [ $# -ge 2 ] || usage "--heartbeat-timeout needs seconds"; HEARTBEAT_TIMEOUT=$2; shift 2 ;;
        --boot-attempts) [ $# -ge 2 ] || usage "--boot-attempts needs a number"; BOOT_ATTEMPTS=$2; shift 2 ;;
        --machine) [ $# -ge 2 ] || usage "--machine needs microvm, q35 or q35-vfio"; MACHINE=$2; shift 2 ;;
        --timing) TIMING=1; shift ;;
        --verbose) VERBOSE=1; shift ;;
        --log) [ $# -ge 2 ] || usage "--log needs a file"; LOG=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
        --) shift; break ;;
        *) usage "unknown option '$1' (the command goes after --)" ;;
    esac
done
[ $# -gt 0 ] || usage "no command given"
[[ "$CPUS" =~ ^[1-9][0-9]*$ ]] || usage "--cpus must be a positive number"
[[ "$MEM" =~ ^[1-9][0-9]*$ ]] || usage "--mem must be a number of MiB"
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || usage "--timeout must be a number of seconds"
[[ "$BOOT_TIMEOUT" =~ ^[0-9]+$ ]] || usage "--boot-timeout must be a number of seconds"
[[ "$HEARTBEAT_TIMEOUT" =~ ^[0-9]+$ ]] || usage "--heartbeat-timeout must be a number of seconds"
[[ "$BOOT_ATTEMPTS" =~ ^[1-9][0-9]*$ ]] || usage "--boot-attempts must be a positive number"
case "$MACHINE" in
    microvm) DEV=device ;;
    q35 | q35-vfio) DEV=pci ;;
    *) usage "--machine must be microvm, q35 or q35-vfio" ;;
esac

fail() { # code message...
    local code=$1
    shift
    say "error: $*"
    exit "$code"
}

QEMU=${VIRGA_L1_QEMU:-qemu-system-x86_64}
KERNEL=${VIRGA_L1_KERNEL:-$ROOT/build/guests/l1/vmlinux}
INITRD=${VIRGA_L1_INITRD:-$ROOT/build/guests/l1/initramfs.cpio.gz}
command -v "$QEMU" >/dev/null 2>&1 ||
    fail $E_HARNESS "cannot start L1: $QEMU not found (apps/host/test/images/build.sh installs qemu-system-x86)"
[ -s "$KERNEL" ] || fail $E_HARNESS "cannot start L1: kernel $KERNEL missing (run apps/host/test/images/build.sh)"
[ -s "$INITRD" ] || fail $E_HARNESS "cannot start L1: initramfs $INITRD missing (run apps/host/test/images/build.sh)"

# ---- the job folder ------------------------------------------------------------
T=$(mktemp -d "${TMPDIR:-/tmp}/virga-l1.XXXXXX") || fail $E_HARNESS "cannot create a temporary folder"
JOB="$T/job"
mkdir -p "$JOB"
QEMU_PID=
READERS=()
cleanup() {
    if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
        kill "$QEMU_PID" 2>/dev/null
        sleep 0.2
        kill -9 "$QEMU_PID" 2>/dev/null
    fi
    for r in "${READERS[@]}"; do kill "$r" 2>/dev/null; done
    [ -n "$LOG" ] && [ -e "$T/all.log" ] && cp "$T/all.log" "$LOG" 2>/dev/null
    if [ "$KEEP" = 1 ]; then say "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

sq() { # single-quote for POSIX sh
    local s=${1//\'/\'\\\'\'}
    printf "'%s'" "$s"
}

CWD=$(pwd -P)
# Folders that L1 mounts afresh hide the host's content: share the working
# directory when it lives there.
case "$CWD/" in
    /tmp/*|/run/*|/dev/*|/var/tmp/*)
        covered=0
        for s in "${SHARES[@]}"; do
            s=$(cd "$s" 2>/dev/null && pwd -P) || continue
            case "$CWD/" in "$s"/*) covered=1 ;; esac
        done
        [ "$covered" = 1 ] || SHARES+=("$CWD")
        ;;
esac

{
    echo "# written by run-in-l1.sh"
    while IFS= read -r name; do
        case "$name" in
            PWD|OLDPWD|SHLVL|_|BASH_*|COLUMNS|LINES) continue ;;
        esac
        printf 'export %s=%s\n' "$name" "$(sq "${!name}")"
    done < <(compgen -e)
    echo "export VIRGA_IN_L1=1"
    printf 'cd %s || { printf "working directory %%s is not visible in L1\\n" %s >/run/virga-job/error; exit 90; }\n' \
        "$(sq "$CWD")" "$(sq "$CWD")"
    printf 'exec'
    for a in "$@"; do printf ' %s' "$(sq "$a")"; done
    printf '\n'
} >"$JOB/cmd.sh"

# QEMU option values escape a comma by doubling it.
qe() { printf '%s' "${1//,/,,}"; }

SHARE_ARGS=()
: >"$JOB/shares"
i=0
for s in "${SHARES[@]}"; do
    [ -d "$s" ] || fail $E_HARNESS "--share $s: no such folder"
    p=$(cd "$s" && pwd -P)
    case "$p" in *$'\n'*) fail $E_HARNESS "--share $s: newline in the path" ;; esac
    [ "$p" = / ] && fail $E_HARNESS "--share /: the root is already shared read-only"
    echo "share$i $p" >>"$JOB/shares"
    SHARE_ARGS+=(-fsdev "local,id=share$i,path=$(qe "$p"),security_model=none"
        -device "virtio-9p-$DEV,fsdev=share$i,mount_tag=share$i")
    i=$((i + 1))
done

mkfifo "$T/stdout" "$T/stderr" || fail $E_HARNESS "mkfifo failed in $T"

# ---- L1 kernel command line ------------------------------------------------------
TSC_KHZ=$(awk -F: '/^cpu MHz/ { printf "%d", $2 * 1000; exit }' /proc/cpuinfo 2>/dev/null)
# nohz=off highres=off: a periodic tick re-raises an interrupt that QEMU's
# TCG SVM now and then loses (GUESTS.md). softlockup_panic=1 ends a hung L1
# instead of blocking the run; watchdog_thresh=60 (a lockup is 120 s) keeps
# a busy host, where the vCPU threads wait for a core, from tripping it.
# kvm_amd.vgif=0: with QEMU 7.2's TCG emulating virtual GIF, L2 guests with
# 2+ vCPUs lost IPIs (an L2 CPU waiting forever in smp_call_function): 6
# hung boots of 38 with it, 0 of 24 without (2026-11-26).
APPEND="console=ttyS0 panic=-1 softlockup_panic=1 watchdog_thresh=60 nohz=off highres=off tsc=reliable kvm_amd.vgif=0"
[ -n "$TSC_KHZ" ] && [ "$TSC_KHZ" -gt 0 ] && APPEND="$APPEND tsc_early_khz=$TSC_KHZ"
[ "$MACHINE" = microvm ] && APPEND="$APPEND pci=off"
# The IOMMU that VFIO needs; pass-through mode for L1's own devices, so only
# the groups VFIO takes are translated. no_timer_check: on a busy host the
# kernel's check of the timer through the interrupt-remapped IOAPIC can miss
# under TCG and panic the boot ("timer doesn't work through
# Interrupt-remapped IO-APIC"), seen once in 4 boots.
[ "$MACHINE" = q35-vfio ] && APPEND="$APPEND intel_iommu=on iommu=pt no_timer_check"
[ -n "${VIRGA_L1_APPEND:-}" ] && APPEND="$APPEND $VIRGA_L1_APPEND"

case "$MACHINE" in
    microvm) MACHINE_ARGS=(-M microvm,rtc=on,acpi=on) ;;
    q35) MACHINE_ARGS=(-M q35) ;;
    # An emulated IOMMU (caching mode: VFIO in L1 tells it every mapping)
    # and QEMU's edu test device to pass through; the IOMMU goes before
    # the PCI devices it translates.
    q35-vfio) MACHINE_ARGS=(-M q35 -device intel-iommu,caching-mode=on -device edu) ;;
esac

QEMU_ARGS=("${MACHINE_ARGS[@]}"
    -accel tcg,thread=multi -cpu "${VIRGA_L1_CPU:-max,la57=off,erms=off,fsrm=off}" -smp "$CPUS" -m "$MEM"
    -nodefaults -no-user-config -display none -no-reboot
    -kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND"
    -chardev "file,id=console,path=$(qe "$T/console.log")" -serial chardev:console
    -monitor "unix:$(qe "$T/monitor.sock"),server=on,wait=off"
    -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap
    -device "virtio-9p-$DEV,fsdev=hostroot,mount_tag=hostroot"
    -fsdev "local,id=job,path=$(qe "$JOB"),security_model=none"
    -device "virtio-9p-$DEV,fsdev=job,mount_tag=virga.job"
    "${SHARE_ARGS[@]}"
    -device "virtio-serial-$DEV,id=vser"
    -chardev "file,id=out,path=$(qe "$T/stdout")" -device virtserialport,bus=vser.0,chardev=out,name=virga.stdout
    -chardev "file,id=err,path=$(qe "$T/stderr")" -device virtserialport,bus=vser.0,chardev=err,name=virga.stderr
    -device "virtio-rng-$DEV")

# ---- run ---------------------------------------------------------------------------
# On a timeout or a stalled boot, record where L1's vCPUs are (QEMU's human
# monitor) in $T/monitor.txt.
# An optional second argument is one more monitor command, run after the dump.
monitor_dump() {
    command -v python3 >/dev/null 2>&1 || return 0
    python3 - "$T/monitor.sock" "$@" >>"$T/monitor.txt" 2>&1 <<'PY' || true
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.settimeout(3)
s.connect(sys.argv[1])
def drain():
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    return out
s.settimeout(0.5)
drain()
print("==== virga-l1: %s; QEMU monitor: info registers -a ====" % sys.argv[2])
cmds = [b"info cpus\n", b"info registers -a\n"]
if len(sys.argv) > 3:
    cmds.append(sys.argv[3].encode() + b"\n")
for cmd in cmds:
    s.sendall(cmd)
    time.sleep(0.5)
    text = drain().decode(errors="replace")
    print("\n".join(l for l in text.splitlines() if not l.startswith("(qemu)") and "\x1b" not in l))
PY
}

elapsed() { # seconds since T0, 2 decimals
    local now=$EPOCHREALTIME
    awk -v a="$T0" -v b="$now" 'BEGIN { printf "%.2f", b - a }'
}

T0=$EPOCHREALTIME
deadline=0
[ "$TIMEOUT" -gt 0 ] && deadline=$((EPOCHSECONDS + TIMEOUT))
attempt=1
while :; do
    rm -f "$JOB/started" "$JOB/exit-code" "$JOB/error" "$JOB/heartbeat" "$T/console.log"
    READERS=()
    cat "$T/stdout" &
    READERS+=($!)
    cat "$T/stderr" >&2 &
    READERS+=($!)

    A0=$EPOCHSECONDS
    nice -n "${VIRGA_L1_NICE:-0}" "$QEMU" "${QEMU_ARGS[@]}" </dev/null >"$T/qemu.out" 2>&1 &
    QEMU_PID=$!
    if [ "$VERBOSE" = 1 ]; then
        # tail waits for the file and stops with QEMU.
        tail -F -n +1 --pid="$QEMU_PID" "$T/console.log" 2>/dev/null | sed -u 's/^/[L1] /' >&2 &
    fi

    T_STARTED=
    timed_out=0
    stalled=0
    hung=0
    ticks=0
    nudged_at=
    nudges=0
    while kill -0 "$QEMU_PID" 2>/dev/null; do
        if [ -z "$T_STARTED" ] && [ -e "$JOB/started" ]; then T_STARTED=$(elapsed); fi
        ticks=$((ticks + 1))
        if [ -n "$T_STARTED" ] && [ "$HEARTBEAT_TIMEOUT" -gt 0 ] && [ $((ticks % 20)) = 0 ]; then
            # Only once a beat has been seen: an initramfs from before the
            # heartbeat existed (VIRGA_L1_INITRD) must not count as hung.
            beat=$(stat -c %Y "$JOB/heartbeat" 2>/dev/null || echo "$EPOCHSECONDS")
            # An L1 whose vCPUs all halted waiting for an interrupt the
            # emulator lost wakes up on any new one: an NMI first, and only
            # a heartbeat still stale after that counts as hung.
            if [ $((EPOCHSECONDS - beat)) -ge "$NUDGE_AFTER" ] && [ "$nudged_at" != "$beat" ] &&
                [ "$NUDGE_AFTER" -lt "$HEARTBEAT_TIMEOUT" ] && [ ! -e "$JOB/exit-code" ]; then
                nudged_at=$beat
                nudges=$((nudges + 1))
                monitor_dump "no heartbeat for ${NUDGE_AFTER}s; sending an NMI" nmi
                say "no heartbeat from L1 for ${NUDGE_AFTER}s: sent it an NMI (nudge $nudges)"
            fi
            if [ $((EPOCHSECONDS - beat)) -ge "$HEARTBEAT_TIMEOUT" ] && [ ! -e "$JOB/exit-code" ]; then
                hung=1
                monitor_dump "no heartbeat for ${HEARTBEAT_TIMEOUT}s"
                kill "$QEMU_PID" 2>/dev/null
                break
            fi
        fi
        if [ "$deadline" -gt 0 ] && [ "$EPOCHSECONDS" -ge "$deadline" ]; then
            timed_out=1
            monitor_dump "timeout"
            kill "$QEMU_PID" 2>/dev/null
            break
        fi
        if [ -z "$T_STARTED" ] && [ "$BOOT_TIMEOUT" -gt 0 ] && [ $((EPOCHSECONDS - A0)) -ge "$BOOT_TIMEOUT" ] &&
            [ ! -e "$JOB/error" ]; then
            stalled=1
            monitor_dump "boot stalled"
            kill "$QEMU_PID" 2>/dev/null
            break
        fi
        sleep 0.1
    done
    wait "$QEMU_PID" 2>/dev/null
    QEMU_RC=$?
    QEMU_PID=
    T_END=$(elapsed)
    [ -z "$T_STARTED" ] && [ -e "$JOB/started" ] && T_STARTED=$T_END

    # Unblock readers whose FIFO QEMU never opened, then let them drain.
    exec 3<>"$T/stdout" 3>&-
    exec 3<>"$T/stderr" 3>&-
    for r in "${READERS[@]}"; do wait "$r" 2>/dev/null; done
    READERS=()
    sleep 0.05
    # Keep every attempt's console in the log.
    { [ -e "$T/console.log" ] && cat "$T/console.log"; [ -e "$T/monitor.txt" ] && cat "$T/monitor.txt"; } >>"$T/all.log" 2>/dev/null
    rm -f "$T/monitor.txt"

    if [ "$stalled" = 1 ] && [ "$attempt" -lt "$BOOT_ATTEMPTS" ]; then
        say "L1 did not start the command within ${BOOT_TIMEOUT}s (attempt $attempt of $BOOT_ATTEMPTS; last console line: $(tr -d '\r' <"$T/console.log" 2>/dev/null | grep -v '^$' | tail -n 1)); booting it again"
        echo "==== virga-l1: attempt $attempt stalled; booting again ====" >>"$T/all.log"
        attempt=$((attempt + 1))
        continue
    fi
    break
done

if [ "$TIMING" = 1 ]; then
    if [ -n "$T_STARTED" ]; then
        cmd_s=$(awk -v a="$T_STARTED" -v b="$T_END" 'BEGIN { printf "%.2f", b - a }')
        echo "VIRGA-L1-TIMING boot=$T_STARTED command=$cmd_s total=$T_END" >&2
    else
        echo "VIRGA-L1-TIMING boot=- command=- total=$T_END" >&2
    fi
fi

console_tail() {
    [ -s "$T/console.log" ] || { say "(the L1 console log is empty)"; return; }
    say "last lines of the L1 console:"
    tail -n 25 "$T/console.log" | tr -d '\r' | sed 's/^/virga-l1:   /' >&2
}

if [ "$timed_out" = 1 ]; then
    if [ -n "$T_STARTED" ]; then
        say "error: timed out after ${TIMEOUT}s (the command had been running for $(awk -v a="$T_STARTED" -v b="$T_END" 'BEGIN { printf "%.0f", b - a }')s); L1 killed"
    else
        say "error: timed out after ${TIMEOUT}s before L1 started the command; L1 killed"
        console_tail
    fi
    exit $E_TIMEOUT
fi

if [ "$hung" = 1 ]; then
    after_nmi=
    [ "$nudges" -gt 0 ] && after_nmi=", even after an NMI"
    say "error: L1 stopped responding while the command ran: no heartbeat for ${HEARTBEAT_TIMEOUT}s$after_nmi (every L1 vCPU halted is QEMU's TCG SVM having lost an interrupt, GUESTS.md; the register dump is in --log); L1 killed"
    console_tail
    exit $E_LOST
fi

if [ "$stalled" = 1 ]; then
    say "error: L1 did not start the command within ${BOOT_TIMEOUT}s, $BOOT_ATTEMPTS times (a hung L1 boot; see --log)"
    console_tail
    exit $E_HARNESS
fi

if [ -s "$JOB/error" ]; then
    say "error: $(cat "$JOB/error")"
    [ -n "$T_STARTED" ] || console_tail
    exit $E_HARNESS
fi

if [ -s "$JOB/exit-code" ]; then
    rc=$(tr -dc '0-9' <"$JOB/exit-code")
    [ -n "$rc" ] && exit "$rc"
fi

# No exit status: say why as precisely as the log allows.
reason=
if [ -s "$T/console.log" ]; then
    reason=$(tr -d '\r' <"$T/console.log" | grep -m 1 -E 'Kernel panic|soft lockup|hard LOCKUP|VIRGA-L1-ERROR|BUG:|Oops' || true)
fi
if [ -z "$T_STARTED" ]; then
    if [ "$QEMU_RC" != 0 ] && [ ! -s "$T/console.log" ]; then
        say "error: cannot start L1: $QEMU exited with status $QEMU_RC${reason:+: $reason}"
        [ -s "$T/qemu.out" ] && sed 's/^/virga-l1:   /' "$T/qemu.out" >&2
    else
        say "error: L1 stopped before it ran the command${reason:+: $reason}"
        [ -s "$T/qemu.out" ] && sed 's/^/virga-l1:   qemu: /' "$T/qemu.out" >&2
        console_tail
    fi
    exit $E_HARNESS
fi
say "error: L1 stopped while the command ran, without an exit status${reason:+: $reason}"
[ -s "$T/qemu.out" ] && sed 's/^/virga-l1:   qemu: /' "$T/qemu.out" >&2
console_tail
exit $E_LOST
