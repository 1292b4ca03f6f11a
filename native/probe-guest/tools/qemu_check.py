#!/usr/bin/env python3
"""Boot build/probe.elf under QEMU microvm and drive its shell over the serial
port: checks every marker and command of docs/probe-guest.md against QEMU's
own devices (8250, virtio-blk, virtio-net on a tap, virtio-balloon), from the
guest's side and from the host's (disk contents, frames on the tap, QMP's
view of the balloon, QEMU's RSS). An independent reference for virga-vmm's
behaviour.

  tools/qemu_check.py            # TCG
  tools/qemu_check.py --kvm      # /dev/kvm (PVM here: slow)
  tools/qemu_check.py --readonly # read-only disk: writes must fail

Needs root (it creates a tap device, probe<pid>, and deletes it at the end).
"""
import argparse, json, os, re, shutil, socket, subprocess, sys, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
ELF = os.path.join(HERE, '..', 'build', 'probe.elf')

GUEST_MAC = '52:54:00:aa:bb:01'
HOST_MAC = '02:00:00:00:00:01'
ETHERTYPE = 0x88b5   # IEEE local experimental: nothing else on the tap uses it
MEM_MIB = 256
PAGE = 4096


def pattern(n, k):
    """The probe's pattern: byte i = (i * 7 + k) & 0xff."""
    return bytes((i * 7 + k) & 0xff for i in range(n))


def mac_bytes(mac):
    return bytes(int(x, 16) for x in mac.split(':'))


class Serial:
    def __init__(self, proc):
        self.proc, self.buf, self.lock = proc, b'', threading.Lock()
        threading.Thread(target=self._reader, daemon=True).start()
        self.pos = 0

    def _reader(self):
        while True:
            b = self.proc.stdout.read1(4096)
            if not b:
                return
            with self.lock:
                self.buf += b

    def expect(self, pattern, timeout):
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                m = rx.search(self.buf, self.pos)
            if m:
                self.pos = m.end()
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        raise TimeoutError('waiting for %r; tail:\n%s' % (pattern, self.buf[-600:].decode(errors='replace')))

    def send(self, s):
        self.proc.stdin.write(s.encode())
        self.proc.stdin.flush()

    def cmd(self, line, answer, timeout):
        self.expect(r'probe> ', timeout)
        self.send(line + '\r')
        return self.expect(answer, timeout)


class Qmp:
    def __init__(self, path, timeout):
        end = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)
        self.file = self.sock.makefile('rwb')
        self._read()   # greeting
        self.cmd('qmp_capabilities')

    def _read(self):
        while True:
            msg = json.loads(self.file.readline())
            if 'event' not in msg:
                return msg

    def cmd(self, execute, **args):
        self.file.write(json.dumps({'execute': execute, 'arguments': args}).encode() + b'\n')
        self.file.flush()
        reply = self._read()
        if 'error' in reply:
            raise RuntimeError('%s: %s' % (execute, reply['error']))
        return reply['return']


class Tap:
    """A host tap for QEMU's netdev, with a raw socket on it: frames the
    guest sends arrive here; frames sent here go to the guest. IPv6 is off
    so the host's own router/neighbour traffic does not reach the guest."""

    def __init__(self, name):
        self.name = name
        subprocess.run(['ip', 'tuntap', 'add', 'dev', name, 'mode', 'tap'], check=True)
        subprocess.run(['sysctl', '-qw', 'net.ipv6.conf.%s.disable_ipv6=1' % name], check=True)
        subprocess.run(['ip', 'link', 'set', name, 'up'], check=True)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE))
        self.sock.bind((name, ETHERTYPE))

    def close(self):
        self.sock.close()
        subprocess.run(['ip', 'link', 'del', self.name], check=False)

    def send(self, frame):
        self.sock.send(frame)

    def recv(self, timeout):
        """The next frame the guest sent (not our own outgoing ones)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data, addr = self.sock.recvfrom(65536)
            except socket.timeout:
                return None
            if addr[2] != socket.PACKET_OUTGOING:
                return data


def rss_mib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    raise RuntimeError('no VmRSS for %d' % pid)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--kvm', action='store_true')
    ap.add_argument('--smp', type=int, default=4)
    ap.add_argument('--readonly', action='store_true')
    ap.add_argument('--timeout', type=float, default=None)
    ap.add_argument('--qemu', default='qemu-system-x86_64')
    a = ap.parse_args()
    tmo = a.timeout or (120 if a.kvm else 20)
    if os.geteuid() != 0 or not os.path.exists('/dev/net/tun'):
        print('FAIL the net check needs root and /dev/net/tun (it creates a tap device)')
        return 1

    tmp = tempfile.mkdtemp(prefix='probe-qemu-')
    disk, empty, qmp_path = (os.path.join(tmp, n) for n in ('disk.img', 'empty.img', 'qmp.sock'))
    with open(disk, 'wb') as f:
        f.truncate(1 << 20)
    open(empty, 'wb').close()
    tap = Tap('probe%d' % os.getpid())

    accel = ['-M', 'microvm,acpi=off', '-enable-kvm', '-cpu', 'host,-arch-capabilities'] if a.kvm \
        else ['-M', 'microvm,accel=tcg,acpi=off', '-cpu', 'max']
    ro = ',readonly=on' if a.readonly else ''
    argv = [a.qemu] + accel + [
        '-global', 'virtio-mmio.force-legacy=false', '-m', str(MEM_MIB), '-smp', str(a.smp),
        '-nographic', '-no-reboot', '-serial', 'stdio', '-monitor', 'none', '-display', 'none',
        '-qmp', 'unix:%s,server=on,wait=off' % qmp_path,
        '-kernel', ELF, '-append', 'console=ttyS0 hello=world',
        # QEMU gives its transports to devices from the last one down and lists
        # them in that order: blk 0, blk 1, net 0, balloon.
        '-drive', 'id=d0,file=%s,format=raw,if=none%s' % (disk, ro),
        '-device', 'virtio-blk-device,drive=d0',
        # Capacity 0 until block_resize: the closest QEMU has to a disk
        # hot-plugged into an empty slot (microvm has no hot-plug).
        '-drive', 'id=d1,file=%s,format=raw,if=none' % empty,
        '-device', 'virtio-blk-device,drive=d1',
        '-netdev', 'tap,id=n0,ifname=%s,script=no,downscript=no' % tap.name,
        '-device', 'virtio-net-device,netdev=n0,id=nic0,mac=%s' % GUEST_MAC,
        '-device', 'virtio-balloon-device,id=balloon0']
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    s = Serial(proc)
    ok = True

    def check(cond, what):
        nonlocal ok
        print(('PASS ' if cond else 'FAIL ') + what)
        ok = ok and cond

    try:
        qmp = Qmp(qmp_path, tmo)
        boot_markers(s, a, tmo, check, t0)
        shell_basics(s, tmo, check)
        blk_checks(s, a, qmp, tmo, check)
        net_checks(s, qmp, tap, tmo, check)
        balloon_checks(s, qmp, proc.pid, tmo, check)
        m = s.cmd('mmio 0 1000', r'(OK|ERR) mmio.*\n', tmo)
        check(re.fullmatch(rb'OK mmio cycles=[1-9]\d*\n', m.group(0)) is not None, 'mmio: ' + m.group(0).decode().strip())
        m = s.cmd('mmio 9 1', r'ERR .*\n', tmo)
        check(m.group(0) == b'ERR mmio no slot 9\n', 'mmio bad slot: ' + m.group(0).decode().strip())
        m = s.cmd('frobnicate', r'ERR .*\n', tmo)
        check(True, 'unknown: ' + m.group(0).decode().strip())
        s.cmd('poweroff', r'OK poweroff\n', tmo)
        rc = proc.wait(tmo)
        check(True, 'poweroff: qemu exited rc=%d after %.2fs' % (rc, time.monotonic() - t0))
    except Exception as e:  # noqa
        check(False, '%s: %s' % (type(e).__name__, e))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        tap.close()
    if not a.readonly:
        with open(disk, 'rb') as f:
            f.seek(3 * 512)
            data = f.read(512)
        check(data == pattern(512, 3 * 13 + 7), 'host sees pattern at sector 3')
    shutil.rmtree(tmp)
    print('ALL OK' if ok else 'FAILED')
    return 0 if ok else 1


def boot_markers(s, a, tmo, check, t0):
    s.expect(r'PROBE boot entry=pvh\n', tmo)
    print('t(boot marker) = %.2fs' % (time.monotonic() - t0))
    m = s.expect(r'PROBE cmdline (.*)\n', tmo)
    check(b'hello=world' in m.group(1) and b'virtio_mmio.device=' in m.group(1), 'cmdline: ' + m.group(1).decode())
    m = s.expect(r'PROBE mem usable=(\d+)\n', tmo)
    check(int(m.group(1)) > (MEM_MIB - 6) << 20, 'mem usable=' + m.group(1).decode())
    for i in range(a.smp):
        s.expect(r'PROBE cpu %d apic=\d+ online\n' % i, tmo)
    m = s.expect(r'PROBE cpus online=(\d+)\n', tmo)
    check(int(m.group(1)) == a.smp, 'cpus online=' + m.group(1).decode())
    m = s.expect(r'PROBE virtio-blk 0 base=0x[0-9a-f]+ irq=\d+ capacity=(\d+) ro=(\d)\n', tmo)
    check(m.group(1) == b'2048' and m.group(2) == (b'1' if a.readonly else b'0'), m.group(0).decode().strip())
    m = s.expect(r'PROBE virtio-blk 1 base=0x[0-9a-f]+ irq=\d+ capacity=(\d+) ro=0\n', tmo)
    check(m.group(1) == b'0', 'empty disk listed: ' + m.group(0).decode().strip())
    m = s.expect(r'PROBE virtio-net 0 base=0x[0-9a-f]+ irq=\d+ mac=(\S+) link=(\w+)\n', tmo)
    check(m.group(1).decode() == GUEST_MAC and m.group(2) == b'up', m.group(0).decode().strip())
    m = s.expect(r'PROBE virtio-balloon base=0x[0-9a-f]+ irq=\d+\n', tmo)
    check(True, m.group(0).decode().strip())
    s.expect(r'PROBE ready\n', tmo)
    print('t(PROBE ready) = %.2fs' % (time.monotonic() - t0))


def shell_basics(s, tmo, check):
    s.cmd('help', r'OK help\n', tmo)
    check(True, 'help')
    s.cmd('info', r'PROBE cmdline .*\nPROBE mem usable=\d+\nPROBE cpus online=\d+\nOK info\n', tmo)
    check(True, 'info')
    t = time.monotonic()
    s.cmd('count 5', r'count 1\ncount 2\ncount 3\ncount 4\ncount 5\nOK count\n', tmo)
    check(True, 'count 5 (%.2fs)' % (time.monotonic() - t))
    s.cmd('count', r'count 3\n', tmo)
    s.send('x')
    s.expect(r'OK count\n', tmo)
    check(True, 'count (until key)')


def blk_checks(s, a, qmp, tmo, check):
    m = s.cmd('blk 0 info', r'(OK|ERR) blk info.*\n', tmo)
    ro = b'1' if a.readonly else b'0'
    check(m.group(0) == b'OK blk info capacity=2048 ro=%s changes=0\n' % ro, m.group(0).decode().strip())
    if a.readonly:
        m = s.cmd('blk 0 write 3 7', r'(OK|ERR) blk write.*\n', tmo)
        check(m.group(0) == b'ERR blk write status=1\n', 'ro write -> ' + m.group(0).decode().strip())
    else:
        s.cmd('blk 0 write 3 7', r'OK blk write\n', tmo)
        check(True, 'blk write')
        s.cmd('blk 0 verify 3 7', r'OK blk verify\n', tmo)
        check(True, 'blk verify')
        m = s.cmd('blk 0 read 3', r'OK blk read ([0-9a-f]{32})\n', tmo)
        check(m.group(1).decode() == pattern(16, 3 * 13 + 7).hex(), 'blk read ' + m.group(1).decode())
        m = s.cmd('blk 0 verify 3 8', r'(OK|ERR) blk verify.*\n', tmo)
        check(m.group(0) == b'ERR blk verify mismatch at 0\n', 'verify mismatch: ' + m.group(0).decode().strip())
        s.cmd('blk 0 flush', r'OK blk flush\n', tmo)
        check(True, 'blk flush')
    # The empty disk grows (a configuration-change interrupt), is used, and
    # shrinks back to nothing, when requests fail as on an unplugged slot.
    qmp.cmd('block_resize', device='d1', size=1 << 20)
    m = s.cmd('blk 1 info', r'(OK|ERR) blk info.*\n', tmo)
    check(m.group(0) == b'OK blk info capacity=2048 ro=0 changes=1\n', 'after resize: ' + m.group(0).decode().strip())
    s.cmd('blk 1 write 5 9', r'OK blk write\n', tmo)
    s.cmd('blk 1 verify 5 9', r'OK blk verify\n', tmo)
    check(True, 'blk 1 write + verify on the disk that appeared after boot')
    qmp.cmd('block_resize', device='d1', size=0)
    m = s.cmd('blk 1 info', r'(OK|ERR) blk info.*\n', tmo)
    check(m.group(0) == b'OK blk info capacity=0 ro=0 changes=2\n', 'after shrink: ' + m.group(0).decode().strip())
    m = s.cmd('blk 1 read 5', r'(OK|ERR) blk read.*\n', tmo)
    check(m.group(0) == b'ERR blk read status=1\n', 'read from the emptied disk: ' + m.group(0).decode().strip())
    m = s.cmd('blk 2 read 0', r'ERR .*\n', tmo)
    check(m.group(0) == b'ERR blk no device 2\n', 'missing device: ' + m.group(0).decode().strip())


def net_checks(s, qmp, tap, tmo, check):
    guest, host = mac_bytes(GUEST_MAC), mac_bytes(HOST_MAC)
    m = s.cmd('net 0 info', r'(OK|ERR) net info.*\n', tmo)
    check(m.group(0) == b'OK net info mac=%s link=up changes=0\n' % GUEST_MAC.encode(), m.group(0).decode().strip())

    # Link changes arrive as configuration-change interrupts.
    qmp.cmd('set_link', name='nic0', up=False)
    m = s.cmd('net 0 info', r'(OK|ERR) net info.*\n', tmo)
    check(m.group(0).endswith(b'link=down changes=1\n'), 'set_link off: ' + m.group(0).decode().strip())
    qmp.cmd('set_link', name='nic0', up=True)
    m = s.cmd('net 0 info', r'(OK|ERR) net info.*\n', tmo)
    check(m.group(0).endswith(b'link=up changes=2\n'), 'set_link on: ' + m.group(0).decode().strip())

    # Guest -> tap.
    for dst, length, seed in ((HOST_MAC, 100, 7), ('broadcast', 60, 3), (HOST_MAC, 1514, 200)):
        s.cmd('net 0 send %s 0x%x %d %d' % (dst, ETHERTYPE, length, seed), r'OK net send\n', tmo)
        frame = tap.recv(tmo)
        want_dst = b'\xff' * 6 if dst == 'broadcast' else host
        good = frame is not None and frame[:6] == want_dst and frame[6:12] == guest and \
            frame[12:14] == ETHERTYPE.to_bytes(2, 'big') and frame[14:] == pattern(length - 14, seed)
        check(good, 'net send %s len=%d seed=%d: tap got %s' % (dst, length, seed,
                                                                 'nothing' if frame is None else '%d bytes' % len(frame)))

    # Tap -> guest, more frames than the receive queue holds: buffers must be
    # given back for the later ones to arrive.
    header = guest + host + ETHERTYPE.to_bytes(2, 'big')
    frames = [(60 + 97 * i, i * 11) for i in range(12)]
    for length, seed in frames:
        tap.send(header + pattern(length - 14, seed))
    got = []
    for length, seed in frames:
        m = s.cmd('net 0 recv 5000 0x%x' % ETHERTYPE, r'(OK|ERR) net recv.*\n', tmo)
        got.append(m.group(0))
    want = [b'OK net recv len=%d dst=%s src=%s type=0x%x seed=%d\n' % (
        length, GUEST_MAC.encode(), HOST_MAC.encode(), ETHERTYPE, seed & 0xff) for length, seed in frames]
    check(got == want, 'net recv of %d frames in order: %s' % (len(frames), got[-1].decode().strip()))
    # A jumbo frame spans two 2 KiB receive buffers (MRG_RXBUF's num_buffers).
    subprocess.run(['ip', 'link', 'set', tap.name, 'mtu', '4000'], check=True)
    tap.send(header + pattern(3000 - 14, 77))
    m = s.cmd('net 0 recv 5000 0x%x' % ETHERTYPE, r'(OK|ERR) net recv.*\n', tmo)
    check(m.group(0).endswith(b'len=3000 dst=%s src=%s type=0x%x seed=77\n' % (
        GUEST_MAC.encode(), HOST_MAC.encode(), ETHERTYPE)), 'frame over two buffers: ' + m.group(0).decode().strip())
    tap.send(header + b'\x00' * 50)
    m = s.cmd('net 0 recv 5000 0x%x' % ETHERTYPE, r'(OK|ERR) net recv.*\n', tmo)
    check(m.group(0).endswith(b'len=64 dst=%s src=%s type=0x%x seed=none\n' % (
        GUEST_MAC.encode(), HOST_MAC.encode(), ETHERTYPE)), 'not the pattern: ' + m.group(0).decode().strip())
    m = s.cmd('net 0 recv 300 0x%x' % ETHERTYPE, r'(OK|ERR) net recv.*\n', tmo)
    check(m.group(0) == b'ERR net recv timeout\n', 'nothing sent: ' + m.group(0).decode().strip())
    m = s.cmd('net 1 info', r'ERR .*\n', tmo)
    check(m.group(0) == b'ERR net no device 1\n', 'missing nic: ' + m.group(0).decode().strip())


def balloon_checks(s, qmp, pid, tmo, check):
    balloon = '/machine/peripheral/balloon0'
    qmp.cmd('qom-set', path=balloon, property='guest-stats-polling-interval', value=1)

    def stats():
        # The device asks every second; wait for a report newer than now.
        since = time.time()
        end = time.monotonic() + tmo
        while time.monotonic() < end:
            st = qmp.cmd('qom-get', path=balloon, property='guest-stats')
            if st['last-update'] > since:
                return st['stats']
            time.sleep(0.2)
        raise TimeoutError('no balloon statistics from the guest')

    def wait_actual(want_bytes):
        # The guest works in the background: no shell command until it is done.
        end = time.monotonic() + tmo
        while time.monotonic() < end:
            if qmp.cmd('query-balloon')['actual'] == want_bytes:
                return True
            time.sleep(0.05)
        return False

    m = s.cmd('balloon info', r'(OK|ERR) balloon.*\n', tmo)
    check(m.group(0) == b'OK balloon target=0 actual=0\n', m.group(0).decode().strip())
    m = s.cmd('info', r'PROBE mem usable=(\d+)\n', tmo)
    usable = int(m.group(1))
    st0 = stats()
    check(st0['stat-total-memory'] == usable and st0['stat-free-memory'] == st0['stat-available-memory'] and
          usable - (4 << 20) < st0['stat-free-memory'] < usable,
          'stats: total=%d free=%d available=%d' % (st0['stat-total-memory'], st0['stat-free-memory'],
                                                    st0['stat-available-memory']))

    rss0 = rss_mib(pid)
    s.cmd('mem touch 64', r'OK mem touch\n', tmo)
    rss1 = rss_mib(pid)
    check(rss1 - rss0 > 60, 'mem touch 64: QEMU RSS %.0f -> %.0f MiB' % (rss0, rss1))

    target = (MEM_MIB - 64) << 20
    t = time.monotonic()
    qmp.cmd('balloon', value=target)
    check(wait_actual(target), 'balloon to %d MiB: query-balloon reached it in %.2fs without a shell command' % (
        target >> 20, time.monotonic() - t))
    rss2 = rss_mib(pid)
    check(rss1 - rss2 > 56, 'inflate 64 MiB: QEMU RSS %.0f -> %.0f MiB' % (rss1, rss2))
    m = s.cmd('balloon info', r'(OK|ERR) balloon.*\n', tmo)
    check(m.group(0) == b'OK balloon target=16384 actual=16384\n', m.group(0).decode().strip())
    st1 = stats()
    check(st0['stat-free-memory'] - st1['stat-free-memory'] == 64 << 20 and
          st1['stat-total-memory'] == usable,
          'stats after inflate: free %d -> %d' % (st0['stat-free-memory'], st1['stat-free-memory']))

    m = s.cmd('mem touch 100000', r'(OK|ERR) mem touch.*\n', tmo)
    check(re.fullmatch(rb'ERR mem touch only \d+ MiB free\n', m.group(0)) is not None, m.group(0).decode().strip())

    qmp.cmd('balloon', value=(MEM_MIB - 20) << 20)
    check(wait_actual((MEM_MIB - 20) << 20), 'deflate to %d MiB' % (MEM_MIB - 20))
    qmp.cmd('balloon', value=MEM_MIB << 20)
    m = s.cmd('balloon info', r'(OK|ERR) balloon.*\n', tmo)
    check(m.group(0) == b'OK balloon target=0 actual=0\n', 'deflate all: ' + m.group(0).decode().strip())
    check(qmp.cmd('query-balloon')['actual'] == MEM_MIB << 20, 'query-balloon back at %d MiB' % MEM_MIB)
    st2 = stats()
    check(st2['stat-free-memory'] == st0['stat-free-memory'], 'stats after deflate: free %d' % st2['stat-free-memory'])


if __name__ == '__main__':
    sys.exit(main())
