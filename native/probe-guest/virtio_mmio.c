/*
 * virtio-mmio discovery from "virtio_mmio.device=<size>@<base>:<irq>" on the
 * command line (Linux's VIRTIO_MMIO_CMDLINE_DEVICES syntax; size and base
 * take K/M/G suffixes), the transport's device-init sequence and the split
 * virtqueue. Only version 2 (virtio 1.x) devices are driven.
 */
#include "probe.h"
#include "io.h"
#include "virtio.h"

static int n_net;

u32 vm_read(const struct virtio_dev *d, u32 off) { return mmio_read32(d->base + off); }
void vm_write(const struct virtio_dev *d, u32 off, u32 val) { mmio_write32(d->base + off, val); }

u64 vm_device_features(const struct virtio_dev *d)
{
    vm_write(d, VM_DEVICE_FEATURES_SEL, 1);
    u64 hi = vm_read(d, VM_DEVICE_FEATURES);
    vm_write(d, VM_DEVICE_FEATURES_SEL, 0);
    return (hi << 32) | vm_read(d, VM_DEVICE_FEATURES);
}

bool virtio_init(struct virtio_dev *d, u64 features, struct virtq *vq)
{
    vm_write(d, VM_STATUS, 0);   /* reset */
    vm_write(d, VM_STATUS, STATUS_ACKNOWLEDGE);
    vm_write(d, VM_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    vm_write(d, VM_DRIVER_FEATURES_SEL, 1);
    vm_write(d, VM_DRIVER_FEATURES, (u32)(features >> 32));
    vm_write(d, VM_DRIVER_FEATURES_SEL, 0);
    vm_write(d, VM_DRIVER_FEATURES, (u32)features);
    u32 st = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK;
    vm_write(d, VM_STATUS, st);
    if (!(vm_read(d, VM_STATUS) & STATUS_FEATURES_OK))
        goto fail;

    vm_write(d, VM_QUEUE_SEL, 0);
    if (vm_read(d, VM_QUEUE_READY) != 0)
        goto fail;
    u32 max = vm_read(d, VM_QUEUE_NUM_MAX);
    if (max < 3)
        goto fail;
    d->qsize = max < VQ_SIZE ? (u16)max : VQ_SIZE;
    d->vq = vq;
    d->last_used = 0;
    memset(vq, 0, sizeof(*vq));
    vm_write(d, VM_QUEUE_NUM, d->qsize);
    u64 desc = (u64)&vq->desc, avail = (u64)&vq->avail, used = (u64)&vq->used;
    vm_write(d, VM_QUEUE_DESC_LO, (u32)desc);
    vm_write(d, VM_QUEUE_DESC_HI, (u32)(desc >> 32));
    vm_write(d, VM_QUEUE_AVAIL_LO, (u32)avail);
    vm_write(d, VM_QUEUE_AVAIL_HI, (u32)(avail >> 32));
    vm_write(d, VM_QUEUE_USED_LO, (u32)used);
    vm_write(d, VM_QUEUE_USED_HI, (u32)(used >> 32));
    vm_write(d, VM_QUEUE_READY, 1);
    return true;
fail:
    vm_write(d, VM_STATUS, vm_read(d, VM_STATUS) | STATUS_FAILED);
    return false;
}

void virtio_driver_ok(struct virtio_dev *d)
{
    vm_write(d, VM_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER |
                           STATUS_FEATURES_OK | STATUS_DRIVER_OK);
}

bool virtio_submit_wait(struct virtio_dev *d, u16 head, u32 timeout_us)
{
    struct virtq *q = d->vq;
    q->avail.ring[q->avail.idx % d->qsize] = head;
    /* x86 keeps stores in order; only the compiler needs fencing so the
     * ring entry is visible before the index and both before the notify. */
    barrier();
    q->avail.idx++;
    barrier();
    vm_write(d, VM_QUEUE_NOTIFY, 0);

    timer_oneshot_us(timeout_us);
    while (*(volatile u16 *)&q->used.idx == d->last_used && !timer_expired())
        wait_for_interrupt();
    timer_stop();
    if (*(volatile u16 *)&q->used.idx == d->last_used)
        return false;
    d->last_used++;
    return true;
}

/* Linux memparse(): number (0x hex or decimal) with an optional K/M/G/T. */
static int parse_size(const char *s, u64 *out)
{
    int n = parse_u64(s, out);
    if (!n)
        return 0;
    switch (s[n]) {
    case 'T': case 't': *out <<= 10; /* fall through */
    case 'G': case 'g': *out <<= 10; /* fall through */
    case 'M': case 'm': *out <<= 10; /* fall through */
    case 'K': case 'k': *out <<= 10; n++; break;
    }
    return n;
}

static void probe_one(int slot, u64 base, u32 irq)
{
    /* Only the identity-mapped 4 GiB is reachable. */
    if (base >= (1ull << 32) - 0x200)
        return;
    struct virtio_dev d = { .base = base, .irq = irq };
    if (vm_read(&d, VM_MAGIC) != VIRTIO_MMIO_MAGIC)
        return;
    u32 id = vm_read(&d, VM_DEVICE_ID);
    if (id == 0)
        return;   /* empty slot */
    if (vm_read(&d, VM_VERSION) != 2) {
        kprintf("PROBE virtio %d legacy unsupported\n", slot);
        return;
    }
    if (id == VIRTIO_ID_BLK)
        virtio_blk_probe(slot, base, irq);
    else if (id == VIRTIO_ID_NET)
        kprintf("PROBE virtio-net %d base=0x%lx irq=%u\n", n_net++, base, irq);
}

void virtio_probe_cmdline(const char *cmdline)
{
    static const char key[] = "virtio_mmio.device=";
    int slot = 0;
    const char *p = cmdline;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *word = p;
        while (*p && *p != ' ')
            p++;
        if (*word != 'v' || strncmp(word, key, sizeof(key) - 1) != 0)
            continue;
        const char *q = word + sizeof(key) - 1;
        u64 size, base, irq;
        int n;
        if (!(n = parse_size(q, &size)) || q[n] != '@')
            continue;
        q += n + 1;
        if (!(n = parse_size(q, &base)) || q[n] != ':')
            continue;
        q += n + 1;
        if (!parse_u64(q, &irq))
            continue;
        probe_one(slot++, base, (u32)irq);
    }
}

void virtio_irq(u32 gsi)
{
    virtio_blk_irq(gsi);
}
