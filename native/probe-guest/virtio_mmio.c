/*
 * virtio-mmio discovery from "virtio_mmio.device=<size>@<base>:<irq>" on the
 * command line (Linux's VIRTIO_MMIO_CMDLINE_DEVICES syntax; size and base
 * take K/M/G suffixes), the transport's device-init sequence and the split
 * virtqueue. Only version 2 (virtio 1.x) devices are driven.
 */
#include "probe.h"
#include "io.h"
#include "virtio.h"

#define MAX_SLOTS 32
#define MAX_DEVS  24

/* Every virtio_mmio.device= window in command-line order (for `mmio`), and
 * the devices whose interrupts we handle. */
static u64 slot_base[MAX_SLOTS] __attribute__((section(".noinit")));
static int n_slots;
static struct virtio_dev *devs[MAX_DEVS] __attribute__((section(".noinit")));
static int n_devs;

u32 vm_read(const struct virtio_dev *d, u32 off) { return mmio_read32(d->base + off); }
void vm_write(const struct virtio_dev *d, u32 off, u32 val) { mmio_write32(d->base + off, val); }

/* The device status (one byte on virtio-pci). */
static u32 get_status(const struct virtio_dev *d) { return d->pci ? vp_status(d) : vm_read(d, VM_STATUS); }
static void set_status(const struct virtio_dev *d, u32 status)
{
    if (d->pci)
        vp_set_status(d, (u8)status);
    else
        vm_write(d, VM_STATUS, status);
}

u64 vm_device_features(const struct virtio_dev *d)
{
    if (d->pci)
        return vp_device_features(d);
    vm_write(d, VM_DEVICE_FEATURES_SEL, 1);
    u64 hi = vm_read(d, VM_DEVICE_FEATURES);
    vm_write(d, VM_DEVICE_FEATURES_SEL, 0);
    return (hi << 32) | vm_read(d, VM_DEVICE_FEATURES);
}

void virtio_fail(struct virtio_dev *d)
{
    set_status(d, get_status(d) | STATUS_FAILED);
}

bool virtio_negotiate(struct virtio_dev *d, u64 features)
{
    set_status(d, 0);   /* reset */
    set_status(d, STATUS_ACKNOWLEDGE);
    set_status(d, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    if (d->pci) {
        vp_set_driver_features(d, features);
    } else {
        vm_write(d, VM_DRIVER_FEATURES_SEL, 1);
        vm_write(d, VM_DRIVER_FEATURES, (u32)(features >> 32));
        vm_write(d, VM_DRIVER_FEATURES_SEL, 0);
        vm_write(d, VM_DRIVER_FEATURES, (u32)features);
    }
    set_status(d, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    if (get_status(d) & STATUS_FEATURES_OK)
        return true;
    virtio_fail(d);
    return false;
}

bool virtio_queue_init(struct virtio_dev *d, struct vqueue *q, u16 index,
                       struct virtq *ring, u16 min_size)
{
    if (d->pci)
        return vp_queue_init(d, q, index, ring, min_size);
    vm_write(d, VM_QUEUE_SEL, index);
    if (vm_read(d, VM_QUEUE_READY) != 0)
        return false;
    u32 max = vm_read(d, VM_QUEUE_NUM_MAX);
    if (max < min_size)
        return false;
    q->ring = ring;
    q->index = index;
    q->size = max < VQ_SIZE ? (u16)max : VQ_SIZE;
    q->last_used = 0;
    /* Only the rings: the struct fills a page, and every 8 bytes cleared
     * is an emulated instruction under PVM. */
    memset(ring, 0, offsetof(struct virtq, used) + sizeof(ring->used));
    vm_write(d, VM_QUEUE_NUM, q->size);
    u64 desc = (u64)&ring->desc, avail = (u64)&ring->avail, used = (u64)&ring->used;
    vm_write(d, VM_QUEUE_DESC_LO, (u32)desc);
    vm_write(d, VM_QUEUE_DESC_HI, (u32)(desc >> 32));
    vm_write(d, VM_QUEUE_AVAIL_LO, (u32)avail);
    vm_write(d, VM_QUEUE_AVAIL_HI, (u32)(avail >> 32));
    vm_write(d, VM_QUEUE_USED_LO, (u32)used);
    vm_write(d, VM_QUEUE_USED_HI, (u32)(used >> 32));
    vm_write(d, VM_QUEUE_READY, 1);
    return true;
}

void virtio_driver_ok(struct virtio_dev *d)
{
    /* Routed and registered first: an edge raised at DRIVER_OK (a frame for
     * the filled RX queue, a balloon target set before boot) is not lost. */
    if (d->pci)
        vp_set_config_vector(d);   /* MSI-X was set up when it was found */
    else if (d->irq <= VEC_GSI_LAST - VEC_GSI_BASE)
        ioapic_route(d->irq, (u8)(VEC_GSI_BASE + d->irq), lapic_id());
    if (n_devs < MAX_DEVS)
        devs[n_devs++] = d;
    set_status(d, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
}

void vq_push(struct vqueue *q, u16 head)
{
    struct virtq *r = q->ring;
    r->avail.ring[r->avail.idx % q->size] = head;
    /* x86 keeps stores in order; only the compiler needs fencing so the
     * ring entry is visible before the index. */
    barrier();
    r->avail.idx++;
    barrier();
}

void vq_notify(struct virtio_dev *d, struct vqueue *q)
{
    if (d->pci)
        vp_notify(q);
    else
        vm_write(d, VM_QUEUE_NOTIFY, q->index);
}

bool vq_pop(struct vqueue *q, u32 *id, u32 *len)
{
    if (!vq_has_used(q))
        return false;
    barrier();
    struct virtq *r = q->ring;
    u16 i = q->last_used % q->size;
    *id = r->used.ring[i].id;
    *len = r->used.ring[i].len;
    q->last_used++;
    return true;
}

bool vq_wait(struct vqueue *q, u32 timeout_us)
{
    if (vq_has_used(q))
        return true;
    timer_oneshot_us(timeout_us);
    while (!vq_has_used(q) && !timer_expired())
        wait_for_interrupt();
    timer_stop();
    return vq_has_used(q);
}

bool virtio_submit_wait(struct virtio_dev *d, struct vqueue *q, u16 head, u32 timeout_us)
{
    vq_push(q, head);
    vq_notify(d, q);
    u32 id, len;
    return vq_wait(q, timeout_us) && vq_pop(q, &id, &len);
}

void virtio_config_read(const struct virtio_dev *d, u32 off, void *out, u32 len, u32 width)
{
    u8 *o = out;
    u32 gen;
    /* A value read in several accesses is only consistent if the
     * generation counter did not move in between. */
    u64 config = d->pci ? d->base : d->base + VM_CONFIG;
    do {
        gen = d->pci ? vp_config_generation(d) : vm_read(d, VM_CONFIG_GENERATION);
        for (u32 i = 0; i < len; i += width) {
            u64 a = config + off + i;
            if (width == 1) {
                o[i] = mmio_read8(a);
            } else if (width == 2) {
                u16 v = mmio_read16(a);
                __builtin_memcpy(o + i, &v, 2);
            } else {
                u32 v = mmio_read32(a);
                __builtin_memcpy(o + i, &v, 4);
            }
        }
    } while (gen != (d->pci ? vp_config_generation(d) : vm_read(d, VM_CONFIG_GENERATION)));
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
        virtio_blk_probe(slot, &d);
    else if (id == VIRTIO_ID_NET)
        virtio_net_probe(slot, base, irq);
    else if (id == VIRTIO_ID_BALLOON)
        virtio_balloon_probe(slot, base, irq);
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
        if (n_slots < MAX_SLOTS)   /* 0: outside the identity map */
            slot_base[n_slots++] = base < (1ull << 32) - 0x200 ? base : 0;
        probe_one(slot++, base, (u32)irq);
    }
}

void virtio_irq(u32 gsi)
{
    for (int i = 0; i < n_devs; i++) {
        struct virtio_dev *d = devs[i];
        if (d->irq != gsi)
            continue;
        /* Acknowledged before anything is looked at: an event after this
         * raises a new edge, one before it is seen by the handler. (On
         * virtio-pci, reading the ISR is the acknowledgement.) */
        u32 isr = d->pci ? vp_isr(d) : vm_read(d, VM_INTERRUPT_STATUS);
        if (!isr)
            continue;
        if (!d->pci)
            vm_write(d, VM_INTERRUPT_ACK, isr);
        if (isr & VIRTIO_INT_CONFIG)
            d->config_changes++;
        if (d->on_irq)
            d->on_irq(d, isr);
    }
}

/* `mmio <slot> <count>`: the average TSC cycles of one read of the slot's
 * InterruptStatus (no side effects, but always a VM exit). */
bool virtio_mmio_latency(int slot, u64 count, u64 *cycles)
{
    if (slot < 0 || slot >= n_slots || !slot_base[slot] || count == 0)
        return false;
    u64 a = slot_base[slot] + VM_INTERRUPT_STATUS;
    u64 t0 = rdtsc();
    for (u64 i = 0; i < count; i++)
        (void)mmio_read32(a);
    *cycles = (rdtsc() - t0) / count;
    return true;
}
