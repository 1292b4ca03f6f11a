/*
 * virtio-pci, modern (virtio 1.x, 4.1): functions 1af4:1040+id on bus 0
 * and behind its bridges (root ports),
 * found through ECAM. The vendor capabilities give the common, ISR,
 * device and notify structures inside the BARs; the BAR addresses are
 * whatever firmware (or, with direct kernel boot, the VMM) put there.
 * Interrupts come by MSI-X: vector 0 of each function is programmed to
 * this CPU on a vector of its own and serves both the queue and
 * configuration changes, whose cause the ISR tells. Only virtio-blk is
 * driven; other virtio functions are listed by `pci` alone.
 */
#include "probe.h"
#include "io.h"
#include "virtio.h"

#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define PCI_CAP_VENDOR 0x09
#define PCI_CAP_MSIX   0x11

/* virtio_pci_cap.cfg_type */
#define VIRTIO_PCI_CAP_COMMON 1
#define VIRTIO_PCI_CAP_NOTIFY 2
#define VIRTIO_PCI_CAP_ISR    3
#define VIRTIO_PCI_CAP_DEVICE 4

/* Common configuration fields. */
#define VP_DEVICE_FEATURE_SELECT 0x00
#define VP_DEVICE_FEATURE        0x04
#define VP_DRIVER_FEATURE_SELECT 0x08
#define VP_DRIVER_FEATURE        0x0c
#define VP_CONFIG_MSIX_VECTOR    0x10
#define VP_DEVICE_STATUS         0x14
#define VP_CONFIG_GENERATION     0x15
#define VP_QUEUE_SELECT          0x16
#define VP_QUEUE_SIZE            0x18
#define VP_QUEUE_MSIX_VECTOR     0x1a
#define VP_QUEUE_ENABLE          0x1c
#define VP_QUEUE_NOTIFY_OFF      0x1e
#define VP_QUEUE_DESC            0x20
#define VP_QUEUE_DRIVER          0x28
#define VP_QUEUE_DEVICE          0x30

/* The first pseudo-GSI of a PCI function: its MSI-X vector is delivered on
 * VEC_GSI_BASE + this, past the IOAPIC's inputs, and dispatched like one. */
#define PCI_FIRST_IRQ 0x60
#define MAX_PCI_IRQS  0x20

static void w8(u64 a, u8 v) { __asm__ __volatile__("movb %0, (%1)" : : "q"(v), "r"(a) : "memory"); }
static void w16(u64 a, u16 v) { __asm__ __volatile__("movw %0, (%1)" : : "r"(v), "r"(a) : "memory"); }

u64 pci_bar_address(const struct pci_ecam *e, u32 bus, u32 dev, u32 fn, u32 bar)
{
    u32 lo = pci_read32(e, bus, dev, fn, 0x10 + 4 * bar);
    if (lo & 1)
        return 0;   /* I/O space */
    u64 a = lo & ~0xfull;
    if ((lo & 0x6) == 0x4)
        a |= (u64)pci_read32(e, bus, dev, fn, 0x14 + 4 * bar) << 32;
    return a;
}

u64 vp_device_features(const struct virtio_dev *d)
{
    mmio_write32(d->common + VP_DEVICE_FEATURE_SELECT, 1);
    u64 hi = mmio_read32(d->common + VP_DEVICE_FEATURE);
    mmio_write32(d->common + VP_DEVICE_FEATURE_SELECT, 0);
    return (hi << 32) | mmio_read32(d->common + VP_DEVICE_FEATURE);
}

u8 vp_status(const struct virtio_dev *d) { return mmio_read8(d->common + VP_DEVICE_STATUS); }
void vp_set_status(const struct virtio_dev *d, u8 status) { w8(d->common + VP_DEVICE_STATUS, status); }

void vp_set_driver_features(const struct virtio_dev *d, u64 features)
{
    mmio_write32(d->common + VP_DRIVER_FEATURE_SELECT, 1);
    mmio_write32(d->common + VP_DRIVER_FEATURE, (u32)(features >> 32));
    mmio_write32(d->common + VP_DRIVER_FEATURE_SELECT, 0);
    mmio_write32(d->common + VP_DRIVER_FEATURE, (u32)features);
}

bool vp_queue_init(struct virtio_dev *d, struct vqueue *q, u16 index, struct virtq *ring, u16 min_size)
{
    w16(d->common + VP_QUEUE_SELECT, index);
    if (mmio_read16(d->common + VP_QUEUE_ENABLE) != 0)
        return false;
    u16 max = mmio_read16(d->common + VP_QUEUE_SIZE);
    if (max < min_size)
        return false;
    q->ring = ring;
    q->index = index;
    q->size = max < VQ_SIZE ? max : VQ_SIZE;
    q->last_used = 0;
    q->notify = d->notify + (u64)mmio_read16(d->common + VP_QUEUE_NOTIFY_OFF) * d->notify_mult;
    memset(ring, 0, offsetof(struct virtq, used) + sizeof(ring->used));
    w16(d->common + VP_QUEUE_SIZE, q->size);
    u64 desc = (u64)&ring->desc, avail = (u64)&ring->avail, used = (u64)&ring->used;
    mmio_write32(d->common + VP_QUEUE_DESC, (u32)desc);
    mmio_write32(d->common + VP_QUEUE_DESC + 4, (u32)(desc >> 32));
    mmio_write32(d->common + VP_QUEUE_DRIVER, (u32)avail);
    mmio_write32(d->common + VP_QUEUE_DRIVER + 4, (u32)(avail >> 32));
    mmio_write32(d->common + VP_QUEUE_DEVICE, (u32)used);
    mmio_write32(d->common + VP_QUEUE_DEVICE + 4, (u32)(used >> 32));
    /* Vector 0 for everything; a device without it answers NO_VECTOR. */
    w16(d->common + VP_QUEUE_MSIX_VECTOR, 0);
    w16(d->common + VP_QUEUE_ENABLE, 1);
    return true;
}

void vp_set_config_vector(const struct virtio_dev *d) { w16(d->common + VP_CONFIG_MSIX_VECTOR, 0); }

void vp_notify(const struct vqueue *q) { w16(q->notify, q->index); }

u8 vp_config_generation(const struct virtio_dev *d) { return mmio_read8(d->common + VP_CONFIG_GENERATION); }

/* Reading the ISR acknowledges it. */
u32 vp_isr(const struct virtio_dev *d) { return mmio_read8(d->isr); }

/* MSI-X vector 0 of the function to this CPU on `vector`, then enabled. */
static bool msix_setup(const struct pci_ecam *e, u32 bus, u32 dev, u32 fn, u32 cap, u8 vector)
{
    u32 table = pci_read32(e, bus, dev, fn, cap + 4);
    u64 bar = pci_bar_address(e, bus, dev, fn, table & 7);
    if (!bar)
        return false;
    u64 entry = bar + (table & ~7u);
    mmio_write32(entry + 0, 0xfee00000u | (lapic_id() << 12));
    mmio_write32(entry + 4, 0);
    mmio_write32(entry + 8, vector);
    mmio_write32(entry + 12, 0);   /* unmasked */
    u32 control = pci_read32(e, bus, dev, fn, cap);
    pci_write32(e, bus, dev, fn, cap, (control & ~(1u << 30)) | (1u << 31));
    return true;
}

/* Fills d from the function's capabilities; false if one is missing. */
static bool map_caps(const struct pci_ecam *e, u32 bus, u32 dev, u32 fn, struct virtio_dev *d, u32 *msix_cap)
{
    *msix_cap = 0;
    u32 cap = pci_read32(e, bus, dev, fn, 0x34) & 0xfc;
    for (int guard = 0; cap && guard < 48; guard++) {
        u32 head = pci_read32(e, bus, dev, fn, cap);
        if ((head & 0xff) == PCI_CAP_MSIX) {
            *msix_cap = cap;
        } else if ((head & 0xff) == PCI_CAP_VENDOR) {
            u32 type = (head >> 24) & 0xff;
            u32 bar = pci_read32(e, bus, dev, fn, cap + 4) & 0xff;
            u64 a = pci_bar_address(e, bus, dev, fn, bar) + pci_read32(e, bus, dev, fn, cap + 8);
            if (type == VIRTIO_PCI_CAP_COMMON && !d->common)
                d->common = a;
            else if (type == VIRTIO_PCI_CAP_ISR && !d->isr)
                d->isr = a;
            else if (type == VIRTIO_PCI_CAP_DEVICE && !d->base)
                d->base = a;
            else if (type == VIRTIO_PCI_CAP_NOTIFY && !d->notify) {
                d->notify = a;
                d->notify_mult = pci_read32(e, bus, dev, fn, cap + 16);
            }
        }
        cap = (head >> 8) & 0xfc;
    }
    return d->common && d->isr && d->notify && *msix_cap;
}

/* Drives a virtio-blk function; `ctx` counts the pseudo-GSIs handed out. */
static void probe_function(const struct pci_ecam *e, u32 bus, u32 dev, u32 fn, u32 id, void *ctx)
{
    u32 *next_irq = ctx;
    if ((id & 0xffff) != 0x1af4 || (id >> 16) != 0x1040 + VIRTIO_ID_BLK || *next_irq >= PCI_FIRST_IRQ + MAX_PCI_IRQS)
        return;
    struct virtio_dev d = { .pci = true, .pci_addr = bus << 8 | dev << 3 | fn, .irq = *next_irq };
    u32 msix_cap;
    u32 command = pci_read32(e, bus, dev, fn, PCI_COMMAND) & 0xffff;
    pci_write32(e, bus, dev, fn, PCI_COMMAND, command | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    if (!map_caps(e, bus, dev, fn, &d, &msix_cap) ||
        !msix_setup(e, bus, dev, fn, msix_cap, (u8)(VEC_GSI_BASE + *next_irq))) {
        kprintf("PROBE virtio-pci %02x:%02x.%x unusable\n", bus, dev, fn);
        return;
    }
    (*next_irq)++;
    virtio_blk_probe(-1, &d);
}

void virtio_pci_probe(void)
{
    struct pci_ecam e;
    u32 next_irq = PCI_FIRST_IRQ;
    if (pci_ecam(&e))
        pci_each_function_below(&e, e.first_bus, probe_function, &next_irq);
}
