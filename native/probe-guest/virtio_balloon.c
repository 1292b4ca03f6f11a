/*
 * virtio-balloon: inflate (queue 0), deflate (1) and statistics (2).
 *
 * The balloon holds the first `pages` pages of the free-memory pool
 * (mempool.c). The work runs from the interrupt handler, so the host's
 * target is met while the shell sleeps or runs another command: a
 * configuration change posts a round of up to VQ_SIZE arrays of 256 PFNs
 * at once, the used interrupt that completes a round posts the next, and
 * `actual` is written after every round.
 */
#include "probe.h"
#include "io.h"
#include "virtio.h"

#define VIRTIO_BALLOON_F_MUST_TELL_HOST 0
#define VIRTIO_BALLOON_F_STATS_VQ       1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM 2

#define CFG_NUM_PAGES 0
#define CFG_ACTUAL    4

#define PFNS_PER_ARRAY 256
#define PAGE_SHIFT 12

/* Statistics tags (virtio spec 5.5.6.3). */
#define S_SWAP_IN  0
#define S_SWAP_OUT 1
#define S_MAJFLT   2
#define S_MINFLT   3
#define S_MEMFREE  4
#define S_MEMTOT   5
#define S_AVAIL    6
#define S_CACHES   7
#define N_STATS    8

struct balloon_stat {
    u16 tag;
    u64 val;
} __attribute__((packed));

struct balloon_dma {
    struct virtq inflateq;
    struct virtq deflateq;
    struct virtq statsq;
    u32 pfns[VQ_SIZE][PFNS_PER_ARRAY];
    struct balloon_stat stats[N_STATS];
} __attribute__((aligned(4096)));

static struct balloon_dma dma __attribute__((section(".noinit")));

static struct {
    bool present, has_stats;
    struct virtio_dev dev;
    struct vqueue inflateq, deflateq, statsq;
    u32 pages;          /* in the balloon (an inflate counts from its post) */
    u32 in_flight;      /* arrays posted and not yet used */
    u32 flight_pages;   /* pages in those arrays */
    bool deflating;     /* direction of the arrays in flight */
    u32 actual;         /* last value written to the config's actual */
} b;

bool virtio_balloon_present(void) { return b.present; }
u32 virtio_balloon_pages(void) { return b.pages; }

/* The target, capped at what the pool has: beyond that the probe gives
 * what it can and `actual` stays below the target. */
static u64 reachable_target(u32 target)
{
    return target < mempool_pages() ? target : mempool_pages();
}

static void fill_stats(void)
{
    u64 free = (mempool_pages() - b.pages) << PAGE_SHIFT;
    static const u16 tags[N_STATS] = { S_SWAP_IN, S_SWAP_OUT, S_MAJFLT, S_MINFLT,
                                       S_MEMFREE, S_MEMTOT, S_AVAIL, S_CACHES };
    const u64 vals[N_STATS] = { 0, 0, 0, 0, free, boot.mem_usable, free, 0 };
    for (int i = 0; i < N_STATS; i++) {
        dma.stats[i].tag = tags[i];
        dma.stats[i].val = vals[i];
    }
}

static void post_stats(void)
{
    fill_stats();
    vq_push(&b.statsq, 0);
    vq_notify(&b.dev, &b.statsq);
}

static u32 read_target(void)
{
    u32 t;
    virtio_config_read(&b.dev, CFG_NUM_PAGES, &t, 4, 4);
    return t;
}

/* Posts one round of PFN arrays toward the target, or writes `actual`
 * once nothing is in flight and the target is met. */
static void balloon_step(void)
{
    if (b.in_flight)
        return;
    u64 target = reachable_target(read_target());
    bool deflate = target < b.pages;
    u64 want = deflate ? b.pages - target : target - b.pages;
    if (want == 0) {
        if (b.actual != b.pages) {
            b.actual = b.pages;
            vm_write(&b.dev, VM_CONFIG + CFG_ACTUAL, b.actual);
        }
        return;
    }
    struct vqueue *q = deflate ? &b.deflateq : &b.inflateq;
    u32 arrays = 0, posted = 0;
    while (want && arrays < q->size) {
        u32 n = want < PFNS_PER_ARRAY ? (u32)want : PFNS_PER_ARRAY;
        /* Deflate gives back the pages taken last. */
        u64 first = deflate ? b.pages - posted - n : b.pages + posted;
        mempool_pfns(dma.pfns[arrays], first, n);
        q->ring->desc[arrays].addr = (u64)dma.pfns[arrays];
        q->ring->desc[arrays].len = n * 4;
        q->ring->desc[arrays].flags = 0;
        vq_push(q, (u16)arrays);
        arrays++;
        posted += n;
        want -= n;
    }
    b.deflating = deflate;
    b.in_flight = arrays;
    b.flight_pages = posted;
    /* Inflated pages are gone from the moment the host may discard them;
     * deflated ones come back only when the host has been told. */
    if (!deflate)
        b.pages += posted;
    vq_notify(&b.dev, q);
}

static void reap(void)
{
    u32 id, len;
    if (b.has_stats && vq_pop(&b.statsq, &id, &len))
        post_stats();   /* the device asks for fresh statistics */
    struct vqueue *q = b.deflating ? &b.deflateq : &b.inflateq;
    while (b.in_flight && vq_pop(q, &id, &len))
        b.in_flight--;
    if (b.in_flight == 0 && b.flight_pages) {
        if (b.deflating)
            b.pages -= b.flight_pages;
        b.flight_pages = 0;
        b.actual = b.pages;
        vm_write(&b.dev, VM_CONFIG + CFG_ACTUAL, b.actual);
    }
}

static void balloon_irq(struct virtio_dev *d, u32 isr)
{
    (void)d;
    (void)isr;
    reap();
    balloon_step();
}

void virtio_balloon_probe(int slot, u64 base, u32 irq)
{
    if (b.present)
        return;
    b.dev.base = base;
    b.dev.irq = irq;
    b.dev.on_irq = balloon_irq;
    u64 offered = vm_device_features(&b.dev);
    /* MUST_TELL_HOST costs nothing: deflated pages are always told. */
    u64 want = (1ull << VIRTIO_F_VERSION_1) |
               (offered & ((1ull << VIRTIO_BALLOON_F_MUST_TELL_HOST) |
                           (1ull << VIRTIO_BALLOON_F_STATS_VQ) |
                           (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM)));
    b.has_stats = (want >> VIRTIO_BALLOON_F_STATS_VQ) & 1;
    if (!(offered & (1ull << VIRTIO_F_VERSION_1)) || !virtio_negotiate(&b.dev, want) ||
        !virtio_queue_init(&b.dev, &b.inflateq, 0, &dma.inflateq, 1) ||
        !virtio_queue_init(&b.dev, &b.deflateq, 1, &dma.deflateq, 1) ||
        (b.has_stats && !virtio_queue_init(&b.dev, &b.statsq, 2, &dma.statsq, 1))) {
        virtio_fail(&b.dev);
        kprintf("PROBE virtio %d init failed\n", slot);
        return;
    }
    if (b.has_stats) {
        dma.statsq.desc[0].addr = (u64)dma.stats;
        dma.statsq.desc[0].len = sizeof(dma.stats);
    }
    b.present = true;
    virtio_driver_ok(&b.dev);
    /* The spec wants the first statistics buffer right after DRIVER_OK;
     * the device keeps it until it wants numbers. */
    if (b.has_stats)
        post_stats();
    kprintf("PROBE virtio-balloon base=0x%lx irq=%u\n", base, irq);
    balloon_step();   /* a target set before boot */
}

void virtio_balloon_info(u32 timeout_us, u32 *target, u32 *actual)
{
    /* The interrupt handler does the work; here we only sleep until the
     * target is met (or as near as the free memory allows). */
    reap();
    balloon_step();
    timer_oneshot_us(timeout_us);
    for (;;) {
        u64 t = reachable_target(read_target());
        if ((!b.in_flight && b.actual == t && b.pages == t) || timer_expired())
            break;
        wait_for_interrupt();
        reap();
        balloon_step();
    }
    timer_stop();
    *target = read_target();
    *actual = b.actual;
}
