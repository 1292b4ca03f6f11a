#!/bin/sh
# Virga nested harness: /init of the L1 machine (busybox sh).
#
# L1 is a Debian kernel in QEMU software emulation with AMD SVM. This init
# loads the modules listed in /etc/virga-modules (virtio, 9p, overlay, kvm,
# kvm_amd ...), mounts the host's root filesystem (9p tag "hostroot",
# read-only) under a tmpfs overlay, mounts the job folder (tag "virga.job")
# and the writable shares listed in it, checks that /dev/kvm is there, and
# runs the job's command in a chroot. The command's stdout and stderr go to
# the virtio-serial ports "virga.stdout" and "virga.stderr"; its exit status
# goes to /job/exit-code and, as "VIRGA-L1-EXIT <code>", to the console.
# See apps/host/test/nested/run-in-l1.sh, which builds the job folder.

export PATH=/sbin:/bin
umask 022

[ "$(stat -c %d /dev)" != "$(stat -c %d /)" ] || mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys

say() { echo "VIRGA-L1 $*"; }
job_ok=
die() {
    echo "VIRGA-L1-ERROR $*"
    [ -n "$job_ok" ] && echo "$*" >/job/error
    sync
    poweroff -f
    sleep 5
    reboot -f
}
up() { read -r u _ </proc/uptime; echo "$u"; }

say "init start uptime=$(up)"

NINEP="trans=virtio,version=9p2000.L,msize=262144"

# insmod does not read module options from the kernel command line as
# modprobe does: pass "name.option=value" arguments along ourselves.
CMDLINE=$(cat /proc/cmdline)
modparams() {
    out=
    set -f
    for a in $CMDLINE; do
        case "$a" in "$1".*=*) out="$out ${a#"$1".}" ;; esac
    done
    set +f
    echo "$out"
}

modfail=
while read -r mod; do
    [ -n "$mod" ] || continue
    optional=
    case "$mod" in \?*) optional=1; mod=${mod#\?} ;; esac
    # shellcheck disable=SC2046
    if ! out=$(insmod "/lib/modules/$mod" $(modparams "${mod%.ko}") 2>&1); then
        case "$out" in *"File exists"*) continue ;; esac
        if [ -n "$optional" ]; then
            say "optional module $mod not loaded: $out"
        else
            # Reported once the job folder is mounted (below).
            say "error: insmod $mod: $out"
            modfail="${modfail:+$modfail; }insmod $mod: $out"
        fi
    fi
done </etc/virga-modules
say "modules loaded uptime=$(up)"

hostname virga-l1 2>/dev/null
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up 2>/dev/null

mkdir -p /job /lower /rw /newroot
mount -t 9p -o "$NINEP" virga.job /job ||
    die "cannot mount the job folder (9p tag virga.job)${modfail:+ ($modfail)}"
job_ok=1
mount -t 9p -o "$NINEP,ro,cache=loose" hostroot /lower ||
    die "cannot mount the host root (9p tag hostroot)"
mount -t tmpfs -o mode=0755 tmpfs /rw || die "cannot mount tmpfs for the overlay"
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot ||
    die "cannot mount the overlay on the host root"

R=/newroot
mount -t proc proc $R/proc || die "mount proc in the new root"
mount -t sysfs sysfs $R/sys || die "mount sysfs in the new root"
mount -t devtmpfs devtmpfs $R/dev || die "mount devtmpfs in the new root"
mkdir -p $R/dev/pts $R/dev/shm
# What udev would add: bash process substitution needs /dev/fd.
ln -sf /proc/self/fd $R/dev/fd
ln -sf /proc/self/fd/0 $R/dev/stdin
ln -sf /proc/self/fd/1 $R/dev/stdout
ln -sf /proc/self/fd/2 $R/dev/stderr
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
mount -t tmpfs -o mode=1777 tmpfs $R/tmp || die "mount /tmp in the new root"
mount -t tmpfs -o mode=0755 tmpfs $R/run || die "mount /run in the new root"
mkdir -p $R/run/virga-job
mount -o bind /job $R/run/virga-job || die "bind the job folder into the new root"

# Keep one idle KVM VM (in-kernel irqchip, one vCPU that never runs) open
# for L1's lifetime. Creating and destroying a VM flips static keys
# (preempt_notifier_key, whose branches sit in __schedule, and KVM's
# apic_sw_disabled): the kernel rewrites its own code each time, and QEMU
# 7.2's multi-threaded TCG has been seen to keep executing a stale int3 from
# such a rewrite, both L1 vCPUs looping in exc_int3 forever. With this VM
# holding the keys on, later VMs only move reference counts. The command is
# not held back for it (python needs ~1.5 s here; a command creates its
# first VM later than that, and if not, that one VM is as before).
PIN_PY='
import fcntl, os, signal
kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
vm = fcntl.ioctl(kvm, 0xAE01, 0)      # KVM_CREATE_VM
fcntl.ioctl(vm, 0xAE60, 0)            # KVM_CREATE_IRQCHIP
fcntl.ioctl(vm, 0xAE41, 0)            # KVM_CREATE_VCPU 0
open("/run/virga-kvm-pin", "w").write(str(os.getpid()))
while True:
    signal.pause()
'
pin_started=
if [ -c /dev/kvm ] && [ -x $R/usr/bin/python3 ]; then
    chroot $R /usr/bin/python3 -S -I -c "$PIN_PY" </dev/null >/dev/null 2>&1 &
    pin_started=1
else
    say "warning: no python3 in the host root; KVM static keys are not pinned"
fi

# Writable shares: one line per share, "<9p tag> <absolute path>".
if [ -r /job/shares ]; then
    while read -r tag path; do
        [ -n "$tag" ] || continue
        mkdir -p "$R$path" || die "cannot create mount point $path"
        mount -t 9p -o "$NINEP" "$tag" "$R$path" || die "cannot mount share $path (9p tag $tag)"
    done </job/shares
fi

if [ ! -c /dev/kvm ]; then
    if grep -qw svm /proc/cpuinfo; then
        die "no /dev/kvm in L1: the CPU has svm but kvm_amd did not create /dev/kvm (${modfail:-$(dmesg | grep -i -e kvm -e svm | tail -n 3 | tr '\n' ' ')})"
    else
        die "no /dev/kvm in L1: the emulated CPU has no svm flag (QEMU's -cpu must offer SVM)${modfail:+ ($modfail)}"
    fi
fi
[ -z "$modfail" ] || die "$modfail"

# The job's output ports (virtio-serial); their names arrive from QEMU a
# moment after virtio_console binds.
port() {
    for p in /sys/class/virtio-ports/*; do
        [ -r "$p/name" ] || continue
        if [ "$(cat "$p/name")" = "$1" ]; then echo "/dev/${p##*/}"; return 0; fi
    done
    return 1
}
n=0
while ! port virga.stderr >/dev/null && [ $n -lt 100 ]; do sleep 0.05; n=$((n + 1)); done
out=$(port virga.stdout) || { say "no virga.stdout port, using the console"; out=/dev/console; }
err=$(port virga.stderr) || { say "no virga.stderr port, using the console"; err=/dev/console; }

started=$(up)
echo "$started" >/job/started
say "command start uptime=$started"
# A heartbeat for run-in-l1.sh: when QEMU's TCG SVM loses an interrupt, L1
# can halt all its vCPUs for good, silently; a stale heartbeat says so.
( while :; do up >/job/heartbeat; sleep 5; done ) </dev/null >/dev/null 2>&1 &
heartbeat=$!
chroot $R /bin/sh /run/virga-job/cmd.sh </dev/null >"$out" 2>"$err"
rc=$?
kill $heartbeat 2>/dev/null
[ -z "$pin_started" ] || [ -s $R/run/virga-kvm-pin ] || say "warning: the KVM pin VM did not start"
echo "$rc" >/job/exit-code
say "command end uptime=$(up)"
echo "VIRGA-L1-EXIT $rc"
sync
poweroff -f
sleep 5
reboot -f
