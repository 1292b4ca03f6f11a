#!/bin/sh
# Virga test guest init (busybox sh).
#
# The same script is /init in the L2 initramfs (stage "initramfs") and
# /sbin/init in the ext4 root filesystem image (stage "rootfs"); the stage
# is read from /etc/virga-stage, written by build.sh.
#
# Everything a test can assert is printed on the console as one line that
# starts with "VIRGA-GUEST ". See README.md beside this file for the list.
#
# Kernel command line switches:
#   virga.action=poweroff|stay|reboot   what to do at the end (default poweroff)
#   virga.root=/dev/vdX | none          mount that ext4 device and switch to it
#   root=/dev/vdX                       same as virga.root (seed command lines)
#   rootfstype=TYPE, ro, rw             honoured for the root mount
#   virga.write=/dev/vdX                write the test pattern to the device
#   virga.read=/dev/vdX                 print the first line stored on the device
#   virga.run=COMMAND,ARG,...           run "virga-scenario COMMAND ARG..." (repeatable,
#                                       in order; guest-scenario.sh lists the commands)

export PATH=/sbin:/bin:/usr/sbin:/usr/bin
umask 022

# The kernel starts an initramfs /init with no console if /dev/console is
# missing from the archive; mounting devtmpfs first makes this independent
# of how the archive was made.
[ "$(stat -c %d /dev)" != "$(stat -c %d /)" ] || mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
[ -e /proc/self ] || mount -t proc proc /proc
[ -e /sys/kernel ] || mount -t sysfs sysfs /sys
mkdir -p /tmp /run 2>/dev/null

stage=initramfs
[ -r /etc/virga-stage ] && read -r stage </etc/virga-stage

m() { echo "VIRGA-GUEST $*"; }

# ---- kernel command line --------------------------------------------------
action=poweroff
vroot=
kroot=
fstype=ext4
mountmode=rw
write_dev=
read_dev=
runs=
set -f
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        virga.action=*) action=${arg#*=} ;;
        virga.root=*) vroot=${arg#*=} ;;
        root=*) kroot=${arg#*=} ;;
        rootfstype=*) fstype=${arg#*=} ;;
        ro) mountmode=ro ;;
        rw) mountmode=rw ;;
        virga.write=*) write_dev=${arg#*=} ;;
        virga.read=*) read_dev=${arg#*=} ;;
        virga.run=*) runs="$runs ${arg#*=}" ;;
    esac
done
set +f

finish() {
    # $1: the action to take; never returns.
    sync
    case "$1" in
        stay)
            m "action=stay (shell on the console)"
            while :; do
                setsid cttyhack /bin/sh
                sleep 1
            done
            ;;
        reboot)
            m "action=reboot"
            reboot -f
            ;;
        *)
            m "action=poweroff"
            poweroff -f
            ;;
    esac
    # Still here: the machine could not do what was asked.
    sleep 2
    m "error $1 did not take effect"
    while :; do sleep 3600; done
}

fail() {
    m "error $*"
    if [ "$action" = stay ]; then finish stay; fi
    finish poweroff
}

case "$action" in
    poweroff|stay|reboot) ;;
    *) m "error unknown virga.action=$action (using poweroff)"; action=poweroff ;;
esac

# ---- modules (initramfs only) ---------------------------------------------
# insmod does not read module options from the kernel command line as
# modprobe does: pass "name.option=value" arguments along ourselves.
modparams() {
    out=
    set -f
    for a in $(cat /proc/cmdline); do
        case "$a" in "$1".*=*) out="$out ${a#"$1".}" ;; esac
    done
    set +f
    echo "$out"
}

# /etc/virga-modules lists module files in dependency order; a leading "?"
# marks a module whose load may fail (for example a CPU-specific driver).
if [ "$stage" = initramfs ] && [ -r /etc/virga-modules ]; then
    while read -r mod; do
        [ -n "$mod" ] || continue
        optional=
        case "$mod" in \?*) optional=1; mod=${mod#\?} ;; esac
        # shellcheck disable=SC2046
        if ! out=$(insmod "/lib/modules/$mod" $(modparams "${mod%.ko}") 2>&1); then
            case "$out" in *"File exists"*) continue ;; esac
            [ -n "$optional" ] || m "error insmod $mod: $out"
        fi
    done </etc/virga-modules
fi

# ---- switch to the ext4 root ----------------------------------------------
newroot_dev=${vroot:-$kroot}
[ "$newroot_dev" = none ] && newroot_dev=
if [ "$stage" = initramfs ] && [ -n "$newroot_dev" ]; then
    m "mounting root $newroot_dev ($fstype, $mountmode)"
    # Block devices can trail module loading by a moment on some kernels.
    n=0
    while [ ! -b "$newroot_dev" ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
    [ -b "$newroot_dev" ] || fail "root device $newroot_dev not found"
    mkdir -p /newroot
    mount -t "$fstype" -o "$mountmode" "$newroot_dev" /newroot ||
        fail "cannot mount $newroot_dev on /newroot"
    [ -x /newroot/sbin/init ] || fail "$newroot_dev has no /sbin/init"
    for d in dev proc sys; do
        mkdir -p "/newroot/$d" 2>/dev/null
        mount --move "/$d" "/newroot/$d" || fail "cannot move /$d to the new root"
    done
    m "switching root to $newroot_dev"
    exec switch_root /newroot /sbin/init
    # exec failed: /dev etc. are gone from here; nothing sensible is left.
    echo "VIRGA-GUEST error switch_root failed" >/newroot/dev/console
    poweroff -f
fi

# ---- markers ----------------------------------------------------------------
if [ "$stage" = rootfs ]; then m "rootfs ready"; else m "ready"; fi

cpus=$(grep -c '^processor' /proc/cpuinfo)
m "cpus=$cpus"
mem=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
m "mem=$mem"

disks=
for d in /sys/block/vd*; do
    [ -e "$d" ] || continue
    disks="${disks:+$disks,}${d##*/}"
done
m "disks=$disks"
for d in /sys/block/vd*; do
    [ -e "$d" ] || continue
    m "disk ${d##*/} sectors=$(cat "$d/size") ro=$(cat "$d/ro")"
done

nics=
for n in /sys/class/net/*; do
    [ -e "$n" ] || continue
    case "${n##*/}" in lo) continue ;; esac
    nics="${nics:+$nics,}${n##*/}"
done
m "nics=$nics"

read -r up _ </proc/uptime
m "uptime=$up"
if [ "$stage" = rootfs ]; then
    m "root=$(awk '$2 == "/" { print $1 " " $3 " " $4 }' /proc/mounts | tail -n 1)"
fi

# ---- test actions -----------------------------------------------------------
# The pattern: "VIRGA-WRITE-OK\n" then the numbers 1..1000, one a line
# (3908 bytes), written at offset 0 and flushed to the device.
[ -z "$write_dev" ] || virga-scenario write "$write_dev"
[ -z "$read_dev" ] || virga-scenario read "$read_dev"
set -f
for run in $runs; do
    # shellcheck disable=SC2046  # commas separate the arguments
    virga-scenario $(echo "$run" | tr ',' ' ')
done
set +f

finish "$action"
