/* virga-io: throughput and latency probes for the nested harness, static so
 * the same binary runs in the L2 initramfs (busybox, no libc) and in L1. */
#define _GNU_SOURCE
#include "virga-io.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>

static const char USAGE[] =
    "usage: virga-io COMMAND ARGS\n"
    "  tcp-recv PORT                      accept one connection, read to EOF\n"
    "  tcp-send IP PORT MIB               connect (retrying 30 s), send MIB MiB\n"
    "  seq-read DEV MIB BLOCK             O_DIRECT sequential read\n"
    "  seq-write DEV MIB BLOCK            O_DIRECT sequential write, then fdatasync\n"
    "  rand-read DEV SECONDS [THREADS]    O_DIRECT 4 KiB random reads, one in flight per thread\n"
    "  mmio-lat ADDR [COUNT] [OFFSET] [--load DEV]\n"
    "                                     time 32-bit reads of a virtio-mmio register via /dev/mem\n"
    "  dirty SIZE MIB_PER_S [SECONDS]     rewrite a SIZE region at MIB_PER_S until SIGTERM (or SECONDS)\n"
    "  pci-reg DEV BAR OFFSET [VALUE]     read (after writing VALUE) a 32-bit register of a PCI memory BAR\n"
    "  pci-cfg DEV OFFSET SIZE [VALUE]    read (after writing VALUE) a PCI configuration register\n"
    "  edu-dma DEV                        QEMU edu: DMA a page from guest RAM to the device and back\n"
    "Sizes take K, M, G suffixes. Results: one line \"VIRGA-IO <command> key=value ...\".\n";

void die(const char *what, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "virga-io: %s: ", what);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t parse_count(const char *name, const char *text)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 0);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-')
        die(name, "expected a non-negative number, got '%s'", text);
    return v;
}

uint64_t parse_size(const char *name, const char *text)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || end == text || text[0] == '-')
        die(name, "expected a size such as 4K or 1M, got '%s'", text);
    unsigned shift = 0;
    switch (*end) {
    case '\0': break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: die(name, "unknown size suffix in '%s' (K, M or G)", text);
    }
    if (*end != '\0') die(name, "trailing characters in '%s'", text);
    return (uint64_t)v << shift;
}

void *aligned_buffer(size_t bytes)
{
    void *p;
    if (posix_memalign(&p, 4096, bytes) != 0) die("memory", "cannot allocate %zu bytes", bytes);
    /* Not zeros: a zero page could be special-cased by a backend. */
    for (size_t i = 0; i < bytes; i++) ((unsigned char *)p)[i] = (unsigned char)(i * 131 + 7);
    return p;
}

uint64_t device_bytes(int fd, const char *path)
{
    struct stat st;
    if (fstat(fd, &st) != 0) die(path, "fstat: %s", strerror(errno));
    if (S_ISBLK(st.st_mode)) {
        uint64_t bytes;
        if (ioctl(fd, BLKGETSIZE64, &bytes) != 0) die(path, "BLKGETSIZE64: %s", strerror(errno));
        return bytes;
    }
    return (uint64_t)st.st_size;
}

void report(const char *name, const char *fmt, ...)
{
    va_list ap;
    printf("VIRGA-IO %s ", name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

double mb_per_s(uint64_t bytes, uint64_t ns)
{
    return ns == 0 ? 0.0 : (double)bytes / 1e6 / ((double)ns / 1e9);
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } commands[] = {
        {"tcp-send", cmd_tcp_send},   {"tcp-recv", cmd_tcp_recv},   {"seq-read", cmd_seq_read},
        {"seq-write", cmd_seq_write}, {"rand-read", cmd_rand_read}, {"mmio-lat", cmd_mmio_lat},
        {"dirty", cmd_dirty},         {"pci-reg", cmd_pci_reg},
        {"pci-cfg", cmd_pci_cfg},     {"edu-dma", cmd_edu_dma},
    };
    /* The serial console is slow under emulation: whole lines only. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "virga-io: unknown command '%s'\n%s", argv[1], USAGE);
    return 2;
}
