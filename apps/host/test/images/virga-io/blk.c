/* Block device throughput with O_DIRECT, so that the guest's page cache is
 * out of the way and every request reaches the virtio-blk device. */
#define _GNU_SOURCE
#include "virga-io.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int open_direct(const char *path, int flags)
{
    int fd = open(path, flags | O_DIRECT | O_CLOEXEC);
    if (fd < 0) die(path, "open with O_DIRECT: %s", strerror(errno));
    return fd;
}

/* seq-read / seq-write DEV MIB BLOCK: MIB MiB in BLOCK-sized requests from
 * offset 0, wrapping round on a device smaller than that. */
static int sequential(const char *name, int argc, char **argv, int write_it)
{
    if (argc != 3) die(name, "usage: %s DEV MIB BLOCK", name);
    const char *dev = argv[0];
    uint64_t total = parse_count("MIB", argv[1]) << 20;
    uint64_t block = parse_size("BLOCK", argv[2]);
    if (block == 0 || block % 4096 != 0 || block > (64u << 20))
        die("BLOCK", "expected a multiple of 4K up to 64M, got '%s'", argv[2]);
    int fd = open_direct(dev, write_it ? O_WRONLY : O_RDONLY);
    uint64_t size = device_bytes(fd, dev) / block * block;
    if (size == 0) die(dev, "smaller than one %llu-byte block", (unsigned long long)block);
    char *buf = aligned_buffer(block);
    uint64_t start = now_ns(), done = 0, offset = 0, requests = 0;
    while (done < total) {
        ssize_t n = write_it ? pwrite(fd, buf, block, (off_t)offset) : pread(fd, buf, block, (off_t)offset);
        if (n < 0 && errno == EINTR) continue;
        if (n != (ssize_t)block)
            die(dev, "%s at offset %llu: %s", write_it ? "pwrite" : "pread", (unsigned long long)offset,
                n < 0 ? strerror(errno) : "short transfer");
        done += block;
        requests++;
        offset = offset + block >= size ? 0 : offset + block;
    }
    if (write_it && fdatasync(fd) != 0) die(dev, "fdatasync: %s", strerror(errno));
    uint64_t ns = now_ns() - start;
    close(fd);
    report(name, "dev=%s bytes=%llu block=%llu seconds=%.3f MB/s=%.1f IOPS=%.0f", dev,
           (unsigned long long)done, (unsigned long long)block, ns / 1e9, mb_per_s(done, ns),
           requests / (ns / 1e9));
    return 0;
}

int cmd_seq_read(int argc, char **argv) { return sequential("seq-read", argc, argv, 0); }
int cmd_seq_write(int argc, char **argv) { return sequential("seq-write", argc, argv, 1); }

/* rand-read: THREADS threads, each with one synchronous 4 KiB pread in
 * flight, so the queue depth is the thread count (no libaio/io_uring in a
 * static busybox guest, and threads give the same depth). */
struct rand_worker {
    pthread_t thread;
    int fd;
    uint64_t blocks;
    uint64_t stop_at;
    uint64_t done;
    uint64_t busy_ns;
    unsigned seed;
    const char *dev;
};

static void *rand_worker_run(void *arg)
{
    struct rand_worker *w = arg;
    char *buf = aligned_buffer(4096);
    while (now_ns() < w->stop_at) {
        /* rand_r gives 31 bits: combine two for devices over 8 TiB too. */
        uint64_t r = ((uint64_t)rand_r(&w->seed) << 31) | (uint64_t)rand_r(&w->seed);
        off_t off = (off_t)(r % w->blocks) * 4096;
        uint64_t t = now_ns();
        ssize_t n = pread(w->fd, buf, 4096, off);
        if (n < 0 && errno == EINTR) continue;
        if (n != 4096)
            die(w->dev, "pread 4K at %lld: %s", (long long)off, n < 0 ? strerror(errno) : "short read");
        w->busy_ns += now_ns() - t;
        w->done++;
    }
    free(buf);
    return NULL;
}

int cmd_rand_read(int argc, char **argv)
{
    if (argc < 2 || argc > 3) die("rand-read", "usage: rand-read DEV SECONDS [THREADS]");
    const char *dev = argv[0];
    uint64_t seconds = parse_count("SECONDS", argv[1]);
    uint64_t threads = argc == 3 ? parse_count("THREADS", argv[2]) : 1;
    if (seconds == 0) die("SECONDS", "expected at least 1");
    if (threads == 0 || threads > 64) die("THREADS", "expected 1..64, got '%s'", argv[2]);
    int fd = open_direct(dev, O_RDONLY);
    uint64_t blocks = device_bytes(fd, dev) / 4096;
    if (blocks == 0) die(dev, "smaller than 4 KiB");
    struct rand_worker *w = calloc(threads, sizeof *w);
    uint64_t start = now_ns();
    for (uint64_t i = 0; i < threads; i++) {
        w[i] = (struct rand_worker){.fd = fd, .blocks = blocks, .stop_at = start + seconds * 1000000000u,
                                    .seed = (unsigned)(i * 7919 + 1), .dev = dev};
        if (pthread_create(&w[i].thread, NULL, rand_worker_run, &w[i]) != 0) die("rand-read", "pthread_create failed");
    }
    uint64_t done = 0, busy = 0;
    for (uint64_t i = 0; i < threads; i++) {
        pthread_join(w[i].thread, NULL);
        done += w[i].done;
        busy += w[i].busy_ns;
    }
    uint64_t ns = now_ns() - start;
    close(fd);
    report("rand-read", "dev=%s threads=%llu reads=%llu seconds=%.3f IOPS=%.0f MB/s=%.1f latency-us=%.1f", dev,
           (unsigned long long)threads, (unsigned long long)done, ns / 1e9, done / (ns / 1e9),
           mb_per_s(done * 4096, ns), done == 0 ? 0.0 : busy / 1e3 / done);
    free(w);
    return 0;
}

/* The background load of mmio-lat: keeps one request in flight on another
 * device, so its virtio queue and the VMM's I/O path stay busy. */
struct load {
    pthread_t thread;
    int fd;
    uint64_t size;
    atomic_int stop;
    uint64_t bytes;
    uint64_t start;
    const char *path;
};

enum { LOAD_BLOCK = 64 * 1024 };

static void *load_run(void *arg)
{
    struct load *l = arg;
    char *buf = aligned_buffer(LOAD_BLOCK);
    uint64_t offset = 0;
    while (!atomic_load(&l->stop)) {
        ssize_t n = pread(l->fd, buf, LOAD_BLOCK, (off_t)offset);
        if (n < 0 && errno == EINTR) continue;
        if (n != LOAD_BLOCK) die(l->path, "load pread: %s", n < 0 ? strerror(errno) : "short read");
        l->bytes += LOAD_BLOCK;
        offset = offset + LOAD_BLOCK >= l->size ? 0 : offset + LOAD_BLOCK;
    }
    free(buf);
    return NULL;
}

struct load *load_start(const char *path)
{
    struct load *l = calloc(1, sizeof *l);
    l->path = path;
    l->fd = open_direct(path, O_RDONLY);
    l->size = device_bytes(l->fd, path) / LOAD_BLOCK * LOAD_BLOCK;
    if (l->size == 0) die(path, "smaller than 64 KiB: cannot serve as load");
    l->start = now_ns();
    if (pthread_create(&l->thread, NULL, load_run, l) != 0) die("load", "pthread_create failed");
    return l;
}

uint64_t load_stop(struct load *l, uint64_t *elapsed_ns)
{
    atomic_store(&l->stop, 1);
    pthread_join(l->thread, NULL);
    *elapsed_ns = now_ns() - l->start;
    uint64_t bytes = l->bytes;
    close(l->fd);
    free(l);
    return bytes;
}
