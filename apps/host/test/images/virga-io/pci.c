/* One 32-bit register of a PCI function's memory BAR, read or written from
 * the guest with no driver: the BAR is mapped through sysfs
 * (/sys/bus/pci/devices/DEV/resourceN), which needs the function's memory
 * decoding on (its "enable" file) but no driver bound. The VFIO scenario
 * reaches QEMU's edu device passed through to the guest this way. */
#define _GNU_SOURCE
#include "virga-io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t parse_hex(const char *name, const char *text)
{
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 0);
    if (errno != 0 || end == text || *end != '\0') die(name, "expected a number (0x for hex), got '%s'", text);
    return value;
}

int cmd_pci_reg(int argc, char **argv)
{
    if (argc < 3 || argc > 4) die("pci-reg", "usage: pci-reg DEV BAR OFFSET [VALUE]");
    uint64_t bar = parse_count("BAR", argv[1]);
    uint64_t offset = parse_hex("OFFSET", argv[2]);
    if (bar > 5) die("BAR", "expected 0..5");
    char path[256];
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/resource%llu", argv[0], (unsigned long long)bar);
    int fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
    if (fd < 0) die(path, "open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) die(path, "stat: %s", strerror(errno));
    if (offset % 4 != 0 || offset + 4 > (uint64_t)st.st_size)
        die("OFFSET", "expected a 32-bit register inside the BAR's %lld bytes", (long long)st.st_size);
    uint64_t page = offset & ~(uint64_t)4095;
    void *map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)page);
    if (map == MAP_FAILED) die(path, "mmap: %s", strerror(errno));
    volatile uint32_t *reg = (volatile uint32_t *)((char *)map + (offset - page));
    if (argc == 4) *reg = (uint32_t)parse_hex("VALUE", argv[3]);
    uint32_t value = *reg;
    report("pci-reg", "dev=%s bar=%llu offset=0x%llx value=0x%08x", argv[0], (unsigned long long)bar,
           (unsigned long long)offset, value);
    munmap(map, 4096);
    close(fd);
    return 0;
}

/* A configuration register through sysfs (/sys/bus/pci/devices/DEV/config),
 * 1, 2 or 4 bytes: what a driver would program (the command register, MSI). */
int cmd_pci_cfg(int argc, char **argv)
{
    if (argc < 3 || argc > 4) die("pci-cfg", "usage: pci-cfg DEV OFFSET SIZE [VALUE]");
    uint64_t offset = parse_hex("OFFSET", argv[1]);
    uint64_t size = parse_count("SIZE", argv[2]);
    if (size != 1 && size != 2 && size != 4) die("SIZE", "expected 1, 2 or 4");
    if (offset % size != 0 || offset + size > 4096) die("OFFSET", "expected an aligned offset below 4096");
    char path[256];
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/config", argv[0]);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) die(path, "open: %s", strerror(errno));
    uint32_t value = 0;
    if (argc == 4) {
        value = (uint32_t)parse_hex("VALUE", argv[3]);
        if (pwrite(fd, &value, size, (off_t)offset) != (ssize_t)size) die(path, "write: %s", strerror(errno));
        value = 0;
    }
    if (pread(fd, &value, size, (off_t)offset) != (ssize_t)size) die(path, "read: %s", strerror(errno));
    report("pci-cfg", "dev=%s offset=0x%llx value=0x%0*x", argv[0], (unsigned long long)offset, (int)size * 2, value);
    close(fd);
    return 0;
}

/* The guest-physical address of the page at `p` (mlocked), from
 * /proc/self/pagemap (root only: others read PFN 0). */
static uint64_t physical_address(void *p)
{
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("/proc/self/pagemap", "open: %s", strerror(errno));
    uint64_t entry = 0;
    off_t at = (off_t)((uintptr_t)p / 4096 * 8);
    if (pread(fd, &entry, sizeof entry, at) != (ssize_t)sizeof entry) die("/proc/self/pagemap", "read: %s", strerror(errno));
    close(fd);
    if (!(entry >> 63) || (entry & ((1ULL << 55) - 1)) == 0) die("/proc/self/pagemap", "page not present or PFN hidden");
    return (entry & ((1ULL << 55) - 1)) * 4096;
}

/* QEMU's edu device DMA (docs/specs/edu.rst): 2 KiB of guest RAM -> the device's
 * buffer (at 0x40000 in its address space) -> other guest RAM, then
 * the two pages compared. Proves the device reaches guest RAM at the
 * addresses the guest knows, i.e. the VMM mapped RAM for its DMA. */
int cmd_edu_dma(int argc, char **argv)
{
    /* Less than edu's whole 4 KiB buffer: QEMU 7.2's range check refuses a
     * transfer that ends at the buffer's end, with a fatal hardware error. */
    enum { SRC = 0x80, DST = 0x88, COUNT = 0x90, CMD = 0x98, BUFFER = 0x40000, PAGE = 4096, BYTES = 2048 };
    if (argc != 1) die("edu-dma", "usage: edu-dma DEV");
    char path[256];
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/resource0", argv[0]);
    int fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
    if (fd < 0) die(path, "open: %s", strerror(errno));
    volatile uint8_t *bar = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (bar == MAP_FAILED) die(path, "mmap: %s", strerror(errno));
    uint8_t *pages = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (pages == MAP_FAILED || mlock(pages, 2 * PAGE) != 0) die("edu-dma", "buffer: %s", strerror(errno));
    for (int i = 0; i < BYTES; i++) pages[i] = (uint8_t)(i * 7 + 3);
    memset(pages + PAGE, 0, PAGE);
    uint64_t from = physical_address(pages), to = physical_address(pages + PAGE);
    struct { uint64_t src, dst, cmd; } steps[2] = {{from, BUFFER, 1}, {BUFFER, to, 3}};
    for (int s = 0; s < 2; s++) {
        *(volatile uint64_t *)(bar + SRC) = steps[s].src;
        *(volatile uint64_t *)(bar + DST) = steps[s].dst;
        *(volatile uint64_t *)(bar + COUNT) = BYTES;
        *(volatile uint64_t *)(bar + CMD) = steps[s].cmd;
        int waited = 0;
        while (*(volatile uint64_t *)(bar + CMD) & 1) {
            if (++waited > 5000) die("edu-dma", "transfer %d did not finish in 5 s", s);
            usleep(1000);
        }
    }
    int same = memcmp(pages, pages + PAGE, BYTES) == 0;
    report("edu-dma", "from=0x%llx to=0x%llx bytes=%d same=%d", (unsigned long long)from, (unsigned long long)to, BYTES,
           same);
    return same ? 0 : 1;
}
