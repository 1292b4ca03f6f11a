/*
 * Line-oriented command shell on COM1. Input arrives by interrupt; the shell
 * sleeps in hlt between bytes and echoes what it consumes, like a terminal.
 */
#include "probe.h"
#include "io.h"

#define LINE_MAX 160
#define COUNT_PERIOD_US 50000

static bool skip_lf;   /* swallow the \n of a \r\n pair */

static int getc_wait(void)
{
    int c;
    while ((c = serial_getc()) < 0)
        wait_for_interrupt();
    return c;
}

static void read_line(char *line)
{
    size_t n = 0;
    for (;;) {
        int c = getc_wait();
        if (c == '\n' && skip_lf) {
            skip_lf = false;
            continue;
        }
        skip_lf = false;
        if (c == '\r' || c == '\n') {
            skip_lf = (c == '\r');
            kprintf("\n");
            line[n] = 0;
            return;
        }
        if (c == '\b' || c == 0x7f) {
            if (n) {
                n--;
                kprintf("\b \b");
            }
            continue;
        }
        if (c < 0x20 || c > 0x7e || n >= LINE_MAX - 1)
            continue;
        line[n++] = (char)c;
        kprintf("%c", c);
    }
}

/* Splits on spaces in place; returns the number of words. */
static int split(char *s, char **argv, int max)
{
    int argc = 0;
    while (*s && argc < max) {
        while (*s == ' ')
            *s++ = 0;
        if (!*s)
            break;
        argv[argc++] = s;
        while (*s && *s != ' ')
            s++;
    }
    return argc;
}

static bool num_arg(const char *s, u64 *v)
{
    int n = parse_u64(s, v);
    return n > 0 && s[n] == 0;
}

void print_info_markers(void)
{
    kprintf("PROBE cmdline %s\n", boot.cmdline);
    kprintf("PROBE mem usable=%lu\n", boot.mem_usable);
    kprintf("PROBE cpus online=%d\n", cpus_online);
}

static void cmd_help(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    kprintf("commands:\n"
            "  help\n"
            "  info\n"
            "  count [n]\n"
            "  emit <word>\n"
            "  txirq <bytes>\n"
            "  blk <n> write <sector> <seed>\n"
            "  blk <n> read <sector>\n"
            "  blk <n> verify <sector> <seed>\n"
            "  blk <n> flush\n"
            "  blk <n> info\n"
            "  net <n> info\n"
            "  net <n> send <dst-mac|broadcast> <ethertype> <frame-len> <seed>\n"
            "  net <n> recv [timeout-ms] [ethertype]\n"
            "  balloon info\n"
            "  mem touch <MiB>\n"
            "  mem fill <MiB> <seed>\n"
            "  mem sum <MiB>\n"
            "  mem dirty <MiB> <MiB/s>\n"
            "  mem check\n"
            "  vmgenid\n"
            "  bases [set]\n"
            "  pci [show BB:DD.F | slot BB:DD.F [arm|ack|on|off]]\n"
            "  mmio <slot> <count>\n"
            "  poweroff\n"
            "  reboot [cf9]\n"
            "  crash\n"
            "OK help\n");
}

static void cmd_count(int argc, char **argv)
{
    u64 n = 0;
    if (argc > 1 && !num_arg(argv[1], &n)) {
        kprintf("ERR count usage: count [n]\n");
        return;
    }
    bool forever = argc < 2;
    u64 t = timer_ticks;
    timer_periodic_us(COUNT_PERIOD_US);
    for (u64 i = 1; forever || i <= n; i++) {
        while (timer_ticks == t && !(forever && serial_rx_pending()))
            wait_for_interrupt();
        if (forever && serial_rx_pending()) {
            int c = serial_getc();   /* the key that stopped us */
            skip_lf = (c == '\r');
            break;
        }
        t = timer_ticks;
        kprintf("count %lu\n", i);
    }
    timer_stop();
    kprintf("OK count\n");
}

static void blk_err(const char *op, int s)
{
    if (s < 0)
        kprintf("ERR blk %s timeout\n", op);
    else
        kprintf("ERR blk %s status=%d\n", op, s);
}

static void cmd_blk(int argc, char **argv)
{
    static u8 buf[512];
    u64 n, sector = 0, seed = 0;
    if (argc < 3 || !num_arg(argv[1], &n)) {
        kprintf("ERR blk usage: blk <n> write|read|verify|flush|info ...\n");
        return;
    }
    if (n >= (u64)virtio_blk_count()) {
        kprintf("ERR blk no device %lu\n", n);
        return;
    }
    const char *op = argv[2];
    if (!strcmp(op, "info") && argc == 3) {
        u64 cap;
        bool ro;
        u32 changes;
        virtio_blk_info((int)n, &cap, &ro, &changes);
        kprintf("OK blk info capacity=%lu ro=%d changes=%u\n", cap, ro, changes);
        return;
    }
    bool is_write = !strcmp(op, "write"), is_read = !strcmp(op, "read");
    bool is_verify = !strcmp(op, "verify"), is_flush = !strcmp(op, "flush");
    int need = is_flush ? 3 : is_read ? 4 : (is_write || is_verify) ? 5 : -1;
    if (need < 0 || argc != need || (need >= 4 && !num_arg(argv[3], &sector)) ||
        (need == 5 && !num_arg(argv[4], &seed))) {
        kprintf("ERR blk usage: blk <n> write|read|verify|flush|info ...\n");
        return;
    }
    int s;
    if (is_flush) {
        s = virtio_blk_flush((int)n);
        if (s)
            blk_err(op, s);
        else
            kprintf("OK blk flush\n");
    } else if (is_write) {
        pattern_fill(buf, 512, (u32)(sector * 13 + seed));
        s = virtio_blk_rw((int)n, true, sector, buf);
        if (s)
            blk_err(op, s);
        else
            kprintf("OK blk write\n");
    } else {
        s = virtio_blk_rw((int)n, false, sector, buf);
        if (s) {
            blk_err(op, s);
        } else if (is_read) {
            char hex[33];
            for (int i = 0; i < 16; i++) {
                hex[2 * i] = "0123456789abcdef"[buf[i] >> 4];
                hex[2 * i + 1] = "0123456789abcdef"[buf[i] & 15];
            }
            hex[32] = 0;
            kprintf("OK blk read %s\n", hex);
        } else {
            long at = pattern_mismatch(buf, 512, (u32)(sector * 13 + seed));
            if (at >= 0)
                kprintf("ERR blk verify mismatch at %ld\n", at);
            else
                kprintf("OK blk verify\n");
        }
    }
}

static bool parse_mac(const char *s, u8 mac[6])
{
    if (!strcmp(s, "broadcast")) {
        memset(mac, 0xff, 6);
        return true;
    }
    for (int i = 0; i < 6; i++) {
        u8 v = 0;
        for (int j = 0; j < 2; j++, s++) {
            char c = *s;
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0)
                return false;
            v = (u8)(v << 4 | d);
        }
        mac[i] = v;
        if (*s != (i < 5 ? ':' : 0))
            return false;
        s++;
    }
    return true;
}

#define NET_USAGE "ERR net usage: net <n> info | send <dst-mac|broadcast> <ethertype> " \
                  "<frame-len 14-1514> <seed> | recv [timeout-ms] [ethertype]\n"
#define NET_RECV_DEFAULT_MS 5000

static void cmd_net(int argc, char **argv)
{
    u64 n;
    if (argc < 3 || !num_arg(argv[1], &n)) {
        kprintf(NET_USAGE);
        return;
    }
    if (n >= (u64)virtio_net_count()) {
        kprintf("ERR net no device %lu\n", n);
        return;
    }
    const char *op = argv[2];
    char a[18], b[18];
    if (!strcmp(op, "info") && argc == 3) {
        struct net_info info;
        virtio_net_info((int)n, &info);
        format_mac(a, info.mac);
        kprintf("OK net info mac=%s link=%s changes=%u\n", a, info.link_up ? "up" : "down",
                info.changes);
    } else if (!strcmp(op, "send") && argc == 7) {
        u8 dst[6];
        u64 type, len, seed;
        if (!parse_mac(argv[3], dst) || !num_arg(argv[4], &type) || type > 0xffff ||
            !num_arg(argv[5], &len) || len < 14 || len > 1514 || !num_arg(argv[6], &seed)) {
            kprintf(NET_USAGE);
            return;
        }
        if (virtio_net_send((int)n, dst, (u16)type, (u32)len, (u32)seed))
            kprintf("OK net send\n");
        else
            kprintf("ERR net send timeout\n");
    } else if (!strcmp(op, "recv") && argc <= 5) {
        u64 ms = NET_RECV_DEFAULT_MS, type = 0;
        if ((argc > 3 && (!num_arg(argv[3], &ms) || ms > 4000000)) ||
            (argc > 4 && (!num_arg(argv[4], &type) || type > 0xffff))) {
            kprintf(NET_USAGE);
            return;
        }
        struct net_frame f;
        if (!virtio_net_recv((int)n, (u32)(ms * 1000), (u16)type, &f)) {
            kprintf("ERR net recv timeout\n");
            return;
        }
        format_mac(a, f.data);
        format_mac(b, f.data + 6);
        kprintf("OK net recv len=%u dst=%s src=%s type=0x%x seed=", f.len, a, b,
                (u32)(f.data[12] << 8 | f.data[13]));
        /* The payload's first byte is its key; the rest must follow it. */
        const u8 *payload = f.data + 14;
        u32 plen = f.len - 14;
        if (plen && pattern_mismatch(payload, plen, payload[0]) < 0)
            kprintf("%u\n", payload[0]);
        else
            kprintf("none\n");
    } else {
        kprintf(NET_USAGE);
    }
}

#define BALLOON_WAIT_US 5000000

static void cmd_balloon(int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[1], "info")) {
        kprintf("ERR balloon usage: balloon info\n");
        return;
    }
    if (!virtio_balloon_present()) {
        kprintf("ERR balloon no device\n");
        return;
    }
    u32 target, actual;
    virtio_balloon_info(BALLOON_WAIT_US, &target, &actual);
    kprintf("OK balloon target=%u actual=%u\n", target, actual);
}

/* `mem dirty <MiB> <MiB/s>`: the dirtier writes pages at that rate (a step
 * each 10 ms tick) and, like `count`, prints `dirty <i>` every 50 ms so the
 * gap a pause leaves in the output can be seen, until a key arrives.
 * `mem check` then verifies every page it wrote. */
#define DIRTY_TICK_US 10000

static void mem_dirty(u64 mib, u64 rate)
{
    u64 free_pages;
    if (!mem_dirty_begin(mib << 8, &free_pages)) {
        kprintf("ERR mem dirty only %lu MiB free\n", free_pages >> 8);
        return;
    }
    u64 per_tick = rate * 256 * DIRTY_TICK_US / 1000000, carry = 0, ticks = 0, printed = 0;
    u64 t = timer_ticks;
    timer_periodic_us(DIRTY_TICK_US);
    for (;;) {
        while (timer_ticks == t && !serial_rx_pending())
            wait_for_interrupt();
        if (serial_rx_pending()) {
            int c = serial_getc();
            skip_lf = (c == '\r');
            break;
        }
        t = timer_ticks;
        /* Rates below a page per tick still move: the remainder carries. */
        carry += rate * 256 * DIRTY_TICK_US % 1000000;
        mem_dirty_step(per_tick + carry / 1000000);
        carry %= 1000000;
        if (++ticks % (COUNT_PERIOD_US / DIRTY_TICK_US) == 0)
            kprintf("dirty %lu\n", ++printed);
    }
    timer_stop();
    u64 pass, pos;
    mem_dirty_where(&pass, &pos);
    kprintf("OK mem dirty pass=%lu pos=%lu\n", pass, pos);
}

static void mem_check(void)
{
    u64 holds, wants;
    i64 page = mem_dirty_check(&holds, &wants);
    if (page < 0)
        kprintf("OK mem check\n");
    else
        kprintf("ERR mem check page %lu holds %lx wants %lx\n", (u64)page, holds, wants);
}

static void cmd_mem(int argc, char **argv)
{
    u64 mib, seed = 0, free_pages, sum, rate;
    if (argc == 4 && !strcmp(argv[1], "dirty") && num_arg(argv[2], &mib) && num_arg(argv[3], &rate) &&
        mib < (1ull << 32) && rate < (1ull << 20)) {
        mem_dirty(mib, rate);
        return;
    }
    if (argc == 2 && !strcmp(argv[1], "check")) {
        mem_check();
        return;
    }
    bool touch = argc == 3 && !strcmp(argv[1], "touch");
    bool fill = argc == 4 && !strcmp(argv[1], "fill") && num_arg(argv[3], &seed);
    bool add = argc == 3 && !strcmp(argv[1], "sum");
    if (!(touch || fill || add) || !num_arg(argv[2], &mib) || mib > (1ull << 32)) {
        kprintf("ERR mem usage: mem touch <MiB> | mem fill <MiB> <seed> | mem sum <MiB> | mem dirty <MiB> <MiB/s> | mem check\n");
        return;
    }
    bool ok = touch ? mem_touch(mib << 8, &free_pages)
              : fill ? mem_fill(mib << 8, seed, &free_pages)
                     : mem_sum(mib << 8, &sum, &free_pages);
    if (!ok)
        kprintf("ERR mem %s only %lu MiB free\n", argv[1], free_pages >> 8);
    else if (add)
        kprintf("OK mem sum %lx\n", sum);
    else
        kprintf("OK mem %s\n", argv[1]);
}

/* virga-vmm's VM generation ID (ACPI VMGenID): 16 bytes at a fixed address
 * in reserved low memory, new in every clone restored from a snapshot. */
#define VMGENID_ADDR 0x9f000

static void cmd_vmgenid(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    const volatile u8 *id = phys(VMGENID_ADDR);
    char hex[33];
    for (int i = 0; i < 16; i++) {
        hex[2 * i] = "0123456789abcdef"[id[i] >> 4];
        hex[2 * i + 1] = "0123456789abcdef"[id[i] & 15];
    }
    hex[32] = 0;
    kprintf("OK vmgenid %s\n", hex);
}

#define MSR_FS_BASE 0xc0000100
#define MSR_GS_BASE 0xc0000101
#define MSR_KERNEL_GS_BASE 0xc0000102

static u64 read_msr(u32 index)
{
    u32 lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(index));
    return ((u64)hi << 32) | lo;
}

static void write_msr(u32 index, u64 value)
{
    __asm__ volatile("wrmsr" : : "c"(index), "a"((u32)value), "d"((u32)(value >> 32)));
}

/* A kernel that was stopped in user mode has two different GS bases, one
 * of them in KERNEL_GS_BASE until its next SWAPGS (and its own FS base):
 * "bases set" gives each its own value, so a snapshot or migration that
 * loses or swaps one shows in "bases". Nothing here uses FS or GS. */
static void cmd_bases(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "set")) {
        write_msr(MSR_FS_BASE, 0x0000111122223000ull);
        write_msr(MSR_GS_BASE, 0x0000333344445000ull);
        write_msr(MSR_KERNEL_GS_BASE, 0x0000555566667000ull);
    } else if (argc != 1) {
        kprintf("ERR usage: bases [set]\n");
        return;
    }
    kprintf("OK bases fs=0x%lx gs=0x%lx kernel-gs=0x%lx\n", read_msr(MSR_FS_BASE), read_msr(MSR_GS_BASE),
            read_msr(MSR_KERNEL_GS_BASE));
}

/* "BB:DD.F", hex. */
static bool parse_bdf(const char *s, u32 *bus, u32 *dev, u32 *fn)
{
    u32 part[3] = { 0, 0, 0 };
    const char sep[3] = { ':', '.', 0 };
    for (int i = 0; i < 3; i++) {
        int digits = 0;
        for (; *s && *s != sep[i]; s++, digits++) {
            char c = *s;
            u32 v = c >= '0' && c <= '9' ? (u32)(c - '0') : c >= 'a' && c <= 'f' ? (u32)(c - 'a' + 10) : 99;
            if (v == 99 || digits >= 2)
                return false;
            part[i] = part[i] * 16 + v;
        }
        if (!digits || *s != sep[i])
            return false;
        if (sep[i])
            s++;
    }
    *bus = part[0];
    *dev = part[1];
    *fn = part[2];
    return *dev < 32 && *fn < 8;
}

static void cmd_pci(int argc, char **argv)
{
    u32 bus, dev, fn;
    if (argc == 1) {
        pci_scan();
    } else if (argc == 3 && !strcmp(argv[1], "show") && parse_bdf(argv[2], &bus, &dev, &fn)) {
        pci_show(bus, dev, fn);
    } else if ((argc == 3 || argc == 4) && !strcmp(argv[1], "slot") && parse_bdf(argv[2], &bus, &dev, &fn)) {
        pci_slot(bus, dev, fn, argc == 4 ? argv[3] : "");
    } else {
        kprintf("ERR pci usage: pci [show BB:DD.F | slot BB:DD.F [arm|ack|on|off]]\n");
    }
}

static void cmd_mmio(int argc, char **argv)
{
    u64 slot, count, cycles;
    if (argc != 3 || !num_arg(argv[1], &slot) || !num_arg(argv[2], &count) || count == 0) {
        kprintf("ERR mmio usage: mmio <slot> <count>\n");
        return;
    }
    if (slot > 0x7fffffff || !virtio_mmio_latency((int)slot, count, &cycles)) {
        kprintf("ERR mmio no slot %lu\n", slot);
        return;
    }
    kprintf("OK mmio cycles=%lu\n", cycles);
}

/* Writes one word and sleeps, without touching the UART again, until a key
 * is pressed: its output must reach the console although no exit follows. */
static void cmd_emit(int argc, char **argv)
{
    char text[17];
    size_t n = argc > 1 ? strnlen(argv[1], 15) : 0;
    if (n == 0) {
        kprintf("ERR emit usage: emit <word of 1-15 characters>\n");
        return;
    }
    /* Let the rest of the typed line arrive first: its interrupt would
     * make the UART reads this command is about not doing. */
    delay_us(200000);
    serial_flush();
    memcpy(text, argv[1], n);
    text[n++] = '\n';
    serial_write_raw(text, n);
    while (!serial_rx_pending())
        __asm__ __volatile__("sti; hlt; cli" ::: "memory");
    int c = serial_getc();   /* the key that woke us */
    skip_lf = (c == '\r');
    kprintf("OK emit\n");
}

/* `txirq <n>`: n bytes of numbered 64-byte lines, sent by THR-empty
 * interrupts (the way Linux's serial console driver sends a shell's
 * output) rather than by polling, then OK. */
static void cmd_txirq(int argc, char **argv)
{
    /* .noinit: every byte sent is written first, and clearing 64 KiB in
     * .bss would cost every boot ~2 ms under PVM's emulation. */
    static char text[65536] __attribute__((section(".noinit")));
    u64 n = 0;
    if (argc != 2 || !num_arg(argv[1], &n) || n == 0 || n > sizeof(text) || n % 64 != 0) {
        kprintf("ERR txirq usage: txirq <bytes: a multiple of 64, at most 65536>\n");
        return;
    }
    for (u64 line = 0; line < n / 64; line++) {
        char *l = text + line * 64;
        memcpy(l, "txirq ", 6);
        for (int d = 0, v = (int)line; d < 5; d++, v /= 10)
            l[10 - d] = (char)('0' + v % 10);
        l[11] = ' ';
        for (int i = 12; i < 63; i++)
            l[i] = (char)('a' + (line + (u64)i) % 26);
        l[63] = '\n';
    }
    serial_write_irq(text, n);
    kprintf("OK txirq\n");
}

static void cmd_info(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    print_info_markers();
    kprintf("OK info\n");
}

static void cmd_poweroff(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    kprintf("OK poweroff\n");
    power_off();
}

static void cmd_reboot(int argc, char **argv)
{
    bool cf9 = argc == 2 && !strcmp(argv[1], "cf9");
    if (argc > 2 || (argc == 2 && !cf9)) {
        kprintf("ERR reboot usage: reboot [cf9]\n");
        return;
    }
    kprintf("OK reboot\n");
    if (cf9)
        power_reboot_cf9();
    power_reboot();
}

static void cmd_crash(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    kprintf("OK crash\n");
    power_crash();
}

static const struct {
    const char *name;
    void (*run)(int argc, char **argv);
} commands[] = {
    { "help", cmd_help },
    { "info", cmd_info },
    { "count", cmd_count },
    { "emit", cmd_emit },
    { "txirq", cmd_txirq },
    { "blk", cmd_blk },
    { "net", cmd_net },
    { "balloon", cmd_balloon },
    { "mem", cmd_mem },
    { "mmio", cmd_mmio },
    { "vmgenid", cmd_vmgenid },
    { "bases", cmd_bases },
    { "pci", cmd_pci },
    { "poweroff", cmd_poweroff },
    { "reboot", cmd_reboot },
    { "crash", cmd_crash },
};

void shell_run(void)
{
    static char line[LINE_MAX];
    char *argv[8];
    for (;;) {
        kprintf("probe> ");
        read_line(line);
        int argc = split(line, argv, ARRAY_SIZE(argv));
        if (argc == 0)
            continue;
        size_t i = 0;
        while (i < ARRAY_SIZE(commands) && strcmp(argv[0], commands[i].name))
            i++;
        if (i < ARRAY_SIZE(commands))
            commands[i].run(argc, argv);
        else
            kprintf("ERR unknown command %s\n", argv[0]);
    }
}
