/* MMIO round trip: a guest read of a virtio-mmio register that no memory
 * backs is a VM exit that the VMM's userspace answers (KVM_EXIT_MMIO), so
 * the time per read is the whole trip guest → KVM → VMM → guest.
 *
 * The register is mapped through /dev/mem. Debian's kernel has
 * CONFIG_STRICT_DEVMEM and CONFIG_IO_STRICT_DEVMEM: /dev/mem refuses RAM,
 * and any MMIO range a driver has claimed. A slot whose virtio-mmio driver
 * is unbound (or which never bound: a transport with device id 0) is
 * allowed. The scenario script (guest-scenario.sh mmio-lat) picks such a
 * slot; see README.md beside this file. */
#define _GNU_SOURCE
#include "virga-io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum {
    REG_MAGIC = 0x000,     /* "virt" */
    REG_VERSION = 0x004,
    REG_DEVICE_ID = 0x008,
    REG_INTERRUPT_STATUS = 0x060,
    WARMUP = 200,
};

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int cmd_mmio_lat(int argc, char **argv)
{
    const char *load_dev = NULL;
    const char *pos[3];
    int npos = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--load") == 0 && i + 1 < argc) load_dev = argv[++i];
        else if (npos < 3) pos[npos++] = argv[i];
        else die("mmio-lat", "usage: mmio-lat ADDR [COUNT] [OFFSET] [--load DEV]");
    }
    if (npos < 1) die("mmio-lat", "usage: mmio-lat ADDR [COUNT] [OFFSET] [--load DEV]");
    uint64_t addr = parse_count("ADDR", pos[0]);
    uint64_t count = npos > 1 ? parse_count("COUNT", pos[1]) : 20000;
    uint64_t offset = npos > 2 ? parse_count("OFFSET", pos[2]) : REG_INTERRUPT_STATUS;
    if (count == 0 || count > 10000000) die("COUNT", "expected 1..10000000");
    if (offset % 4 != 0 || offset >= 0x200) die("OFFSET", "expected a 32-bit register offset below 0x200");
    if (addr % 0x200 != 0) die("ADDR", "expected a slot base (a multiple of 0x200), got 0x%llx", (unsigned long long)addr);

    int fd = open("/dev/mem", O_RDWR | O_SYNC | O_CLOEXEC);
    if (fd < 0) die("/dev/mem", "open: %s", strerror(errno));
    /* QEMU's microvm packs its slots 512 bytes apart: map the page. */
    uint64_t page = addr & ~(uint64_t)4095;
    void *map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, (off_t)page);
    if (map == MAP_FAILED)
        die("/dev/mem", "mmap 0x%llx: %s (CONFIG_IO_STRICT_DEVMEM refuses a page any driver holds: unbind the "
            "virtio-mmio driver of every slot in it first)", (unsigned long long)page, strerror(errno));
    volatile uint32_t *regs = (volatile uint32_t *)((char *)map + (addr - page));
    uint32_t magic = regs[REG_MAGIC / 4];
    if (magic != 0x74726976)
        die("ADDR", "0x%llx is not a virtio-mmio slot (magic 0x%08x, expected 0x74726976 \"virt\")",
            (unsigned long long)addr, magic);
    uint32_t version = regs[REG_VERSION / 4], device = regs[REG_DEVICE_ID / 4];

    struct load *load = load_dev ? load_start(load_dev) : NULL;
    /* Let the load reach its steady state before the clock starts. */
    if (load) usleep(500000);
    uint64_t *lat = malloc(count * sizeof *lat);
    volatile uint32_t sink = 0;
    for (int i = 0; i < WARMUP; i++) sink += regs[offset / 4];
    uint64_t start = now_ns();
    for (uint64_t i = 0; i < count; i++) {
        uint64_t t = now_ns();
        sink += regs[offset / 4];
        lat[i] = now_ns() - t;
    }
    uint64_t total = now_ns() - start;
    uint64_t load_ns = 0, load_bytes = load ? load_stop(load, &load_ns) : 0;
    (void)sink;
    munmap(map, 4096);
    close(fd);

    qsort(lat, count, sizeof *lat, compare_u64);
    double sum = 0;
    for (uint64_t i = 0; i < count; i++) sum += (double)lat[i];
    char load_text[160] = "load=none";
    if (load_dev)
        snprintf(load_text, sizeof load_text, "load=%s load-MB/s=%.1f", load_dev, mb_per_s(load_bytes, load_ns));
    report("mmio-lat",
           "addr=0x%llx offset=0x%llx version=%u device-id=%u reads=%llu min-us=%.2f median-us=%.2f p99-us=%.2f "
           "mean-us=%.2f per-second=%.0f %s",
           (unsigned long long)addr, (unsigned long long)offset, version, device, (unsigned long long)count,
           lat[0] / 1e3, lat[count / 2] / 1e3, lat[count * 99 / 100] / 1e3, sum / count / 1e3,
           count / (total / 1e9), load_text);
    free(lat);
    return 0;
}
