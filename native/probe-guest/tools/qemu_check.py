#!/usr/bin/env python3
"""Boot build/probe.elf under QEMU microvm and drive its shell over the serial
port: checks every marker and command of docs/probe-guest.md, then the disk
contents on the host. An independent reference for virga-vmm's behaviour.

  tools/qemu_check.py            # TCG
  tools/qemu_check.py --kvm      # /dev/kvm (PVM here: slow)
  tools/qemu_check.py --readonly # read-only disk: writes must fail
"""
import argparse, os, re, subprocess, sys, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
ELF = os.path.join(HERE, '..', 'build', 'probe.elf')


class Serial:
    def __init__(self, proc):
        self.proc, self.buf, self.lock = proc, b'', threading.Lock()
        self.t0 = time.monotonic()
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--kvm', action='store_true')
    ap.add_argument('--smp', type=int, default=4)
    ap.add_argument('--readonly', action='store_true')
    ap.add_argument('--timeout', type=float, default=None)
    ap.add_argument('--qemu', default='qemu-system-x86_64')
    a = ap.parse_args()
    tmo = a.timeout or (120 if a.kvm else 20)

    disk = tempfile.NamedTemporaryFile(prefix='probe-disk-', suffix='.img', delete=False).name
    with open(disk, 'wb') as f:
        f.truncate(1 << 20)
    accel = ['-M', 'microvm,acpi=off', '-enable-kvm', '-cpu', 'host,-arch-capabilities'] if a.kvm \
        else ['-M', 'microvm,accel=tcg,acpi=off', '-cpu', 'max']
    ro = ',readonly=on' if a.readonly else ''
    argv = [a.qemu] + accel + [
        '-global', 'virtio-mmio.force-legacy=false', '-m', '256', '-smp', str(a.smp),
        '-nographic', '-no-reboot', '-serial', 'stdio', '-monitor', 'none', '-display', 'none',
        '-kernel', ELF, '-append', 'console=ttyS0 hello=world',
        '-drive', 'id=d0,file=%s,format=raw,if=none%s' % (disk, ro),
        '-device', 'virtio-blk-device,drive=d0']
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    s = Serial(proc)
    ok = True

    def check(cond, what):
        nonlocal ok
        print(('PASS ' if cond else 'FAIL ') + what)
        ok = ok and cond

    try:
        s.expect(r'PROBE boot entry=pvh\n', tmo)
        print('t(boot marker) = %.2fs' % (time.monotonic() - t0))
        m = s.expect(r'PROBE cmdline (.*)\n', tmo)
        check(b'hello=world' in m.group(1) and b'virtio_mmio.device=' in m.group(1), 'cmdline: ' + m.group(1).decode())
        m = s.expect(r'PROBE mem usable=(\d+)\n', tmo)
        check(int(m.group(1)) > 250 << 20, 'mem usable=' + m.group(1).decode())
        for i in range(a.smp):
            s.expect(r'PROBE cpu %d apic=\d+ online\n' % i, tmo)
        m = s.expect(r'PROBE cpus online=(\d+)\n', tmo)
        check(int(m.group(1)) == a.smp, 'cpus online=' + m.group(1).decode())
        m = s.expect(r'PROBE virtio-blk 0 base=0x[0-9a-f]+ irq=\d+ capacity=(\d+) ro=(\d)\n', tmo)
        check(m.group(1) == b'2048' and m.group(2) == (b'1' if a.readonly else b'0'), m.group(0).decode().strip())
        s.expect(r'PROBE ready\n', tmo)
        print('t(PROBE ready) = %.2fs' % (time.monotonic() - t0))

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
        if a.readonly:
            m = s.cmd('blk 0 write 3 7', r'(OK|ERR) blk write.*\n', tmo)
            check(m.group(0) == b'ERR blk write status=1\n', 'ro write -> ' + m.group(0).decode().strip())
        else:
            s.cmd('blk 0 write 3 7', r'OK blk write\n', tmo)
            check(True, 'blk write')
            s.cmd('blk 0 verify 3 7', r'OK blk verify\n', tmo)
            check(True, 'blk verify')
            m = s.cmd('blk 0 read 3', r'OK blk read ([0-9a-f]{32})\n', tmo)
            exp = bytes((i * 7 + 3 * 13 + 7) & 0xff for i in range(16)).hex()
            check(m.group(1).decode() == exp, 'blk read ' + m.group(1).decode())
            m = s.cmd('blk 0 verify 3 8', r'(OK|ERR) blk verify.*\n', tmo)
            check(m.group(0) == b'ERR blk verify mismatch at 0\n', 'verify mismatch: ' + m.group(0).decode().strip())
            s.cmd('blk 0 flush', r'OK blk flush\n', tmo)
            check(True, 'blk flush')
        m = s.cmd('blk 1 read 0', r'ERR .*\n', tmo)
        check(True, 'missing device: ' + m.group(0).decode().strip())
        m = s.cmd('frobnicate', r'ERR .*\n', tmo)
        check(True, 'unknown: ' + m.group(0).decode().strip())
        s.cmd('poweroff', r'OK poweroff\n', tmo)
        rc = proc.wait(tmo)
        check(True, 'poweroff: qemu exited rc=%d after %.2fs' % (rc, time.monotonic() - t0))
    except Exception as e:  # noqa
        check(False, str(e))
    finally:
        if proc.poll() is None:
            proc.kill()
    if not a.readonly:
        with open(disk, 'rb') as f:
            f.seek(3 * 512)
            data = f.read(512)
        check(data == bytes((i * 7 + 3 * 13 + 7) & 0xff for i in range(512)), 'host sees pattern at sector 3')
    os.unlink(disk)
    print('ALL OK' if ok else 'FAILED')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
