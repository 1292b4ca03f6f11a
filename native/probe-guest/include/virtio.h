/* virtio-mmio (version 2, "modern") and virtio-pci (modern) transports and
 * split virtqueues, virtio 1.x spec sections 4.2, 4.1 and 2.7. */
#pragma once
#include "probe.h"

#define VIRTIO_MMIO_MAGIC 0x74726976   /* "virt" */

#define VM_MAGIC            0x000
#define VM_VERSION          0x004
#define VM_DEVICE_ID        0x008
#define VM_VENDOR_ID        0x00c
#define VM_DEVICE_FEATURES  0x010
#define VM_DEVICE_FEATURES_SEL 0x014
#define VM_DRIVER_FEATURES  0x020
#define VM_DRIVER_FEATURES_SEL 0x024
#define VM_QUEUE_SEL        0x030
#define VM_QUEUE_NUM_MAX    0x034
#define VM_QUEUE_NUM        0x038
#define VM_QUEUE_READY      0x044
#define VM_QUEUE_NOTIFY     0x050
#define VM_INTERRUPT_STATUS 0x060
#define VM_INTERRUPT_ACK    0x064
#define VM_STATUS           0x070
#define VM_QUEUE_DESC_LO    0x080
#define VM_QUEUE_DESC_HI    0x084
#define VM_QUEUE_AVAIL_LO   0x090
#define VM_QUEUE_AVAIL_HI   0x094
#define VM_QUEUE_USED_LO    0x0a0
#define VM_QUEUE_USED_HI    0x0a4
#define VM_CONFIG_GENERATION 0x0fc
#define VM_CONFIG           0x100

#define STATUS_ACKNOWLEDGE 1
#define STATUS_DRIVER      2
#define STATUS_DRIVER_OK   4
#define STATUS_FEATURES_OK 8
#define STATUS_FAILED      0x80

#define VIRTIO_F_VERSION_1 32

#define VIRTIO_ID_NET     1
#define VIRTIO_ID_BLK     2
#define VIRTIO_ID_BALLOON 5

/* InterruptStatus bits. */
#define VIRTIO_INT_USED   1
#define VIRTIO_INT_CONFIG 2

#define VQ_SIZE 8   /* one blk request in flight needs 3 descriptors */

#define VRING_DESC_F_NEXT  1
#define VRING_DESC_F_WRITE 2

struct vq_desc {
    u64 addr;
    u32 len;
    u16 flags;
    u16 next;
};

/* Descriptor table (16-byte aligned), available ring (2-byte aligned) and
 * used ring (4-byte aligned) in one struct, each queue on its own page. */
struct virtq {
    struct vq_desc desc[VQ_SIZE];
    struct {
        u16 flags;
        u16 idx;
        u16 ring[VQ_SIZE];
        u16 used_event;
    } avail;
    u16 pad;
    struct {
        u16 flags;
        u16 idx;
        struct {
            u32 id;
            u32 len;
        } ring[VQ_SIZE];
        u16 avail_event;
    } used __attribute__((aligned(4)));
} __attribute__((aligned(4096)));

/* The driver's view of one virtqueue. */
struct vqueue {
    struct virtq *ring;
    u16 index;       /* the queue's number, for QueueSel and QueueNotify */
    u16 size;
    u16 last_used;   /* used-ring entries consumed so far */
    u64 notify;      /* virtio-pci: the queue's notify register */
};

struct virtio_dev {
    u64 base;        /* virtio-mmio: the registers; virtio-pci: the device config */
    u32 irq;         /* the GSI, or virtio-pci's pseudo-GSI for its MSI-X vector */
    bool pci;
    u32 pci_addr;    /* bus << 8 | device << 3 | function */
    u64 common, isr, notify;   /* virtio-pci structures, found by capability */
    u32 notify_mult;
    u32 config_changes;   /* configuration-change interrupts seen */
    /* Called from the interrupt handler (IF=0) after InterruptStatus was
     * acknowledged, with the bits that were set. */
    void (*on_irq)(struct virtio_dev *d, u32 isr);
};

u32 vm_read(const struct virtio_dev *d, u32 off);
void vm_write(const struct virtio_dev *d, u32 off, u32 val);
u64 vm_device_features(const struct virtio_dev *d);
/* Reset, ACKNOWLEDGE|DRIVER, the driver's features, FEATURES_OK. false
 * (with FAILED set) if the device refuses them. */
bool virtio_negotiate(struct virtio_dev *d, u64 driver_features);
/* Queue `index` with min(VQ_SIZE, QueueNumMax) entries (at least `min_size`)
 * on `ring`. false if the queue is missing, in use or too small. */
bool virtio_queue_init(struct virtio_dev *d, struct vqueue *q, u16 index,
                       struct virtq *ring, u16 min_size);
void virtio_fail(struct virtio_dev *d);
/* DRIVER_OK, and the device's interrupt routed to this CPU. */
void virtio_driver_ok(struct virtio_dev *d);

/* Make the chain at `head` available (no notification). */
void vq_push(struct vqueue *q, u16 head);
void vq_notify(struct virtio_dev *d, struct vqueue *q);
static inline bool vq_has_used(const struct vqueue *q)
{
    return *(volatile u16 *)&q->ring->used.idx != q->last_used;
}
/* Takes the next used entry; false if there is none. */
bool vq_pop(struct vqueue *q, u32 *id, u32 *len);
/* Sleeps (hlt) until the queue has a used entry or timeout_us passes.
 * Call with IF=0. */
bool vq_wait(struct vqueue *q, u32 timeout_us);
/* Post the chain at `head`, notify, wait for the device to return it and
 * consume that used entry. false on timeout. Call with IF=0. */
bool virtio_submit_wait(struct virtio_dev *d, struct vqueue *q, u16 head, u32 timeout_us);
/* Reads `len` bytes of the configuration space at `off` by `width`-byte
 * accesses, retried until ConfigGeneration is stable across them. */
void virtio_config_read(const struct virtio_dev *d, u32 off, void *out, u32 len, u32 width);

/* virtio_pci.c: the pieces of the generic functions above that differ. */
u64 vp_device_features(const struct virtio_dev *d);
u8 vp_status(const struct virtio_dev *d);
void vp_set_status(const struct virtio_dev *d, u8 status);
void vp_set_driver_features(const struct virtio_dev *d, u64 features);
bool vp_queue_init(struct virtio_dev *d, struct vqueue *q, u16 index, struct virtq *ring, u16 min_size);
void vp_set_config_vector(const struct virtio_dev *d);
void vp_notify(const struct vqueue *q);
u8 vp_config_generation(const struct virtio_dev *d);
u32 vp_isr(const struct virtio_dev *d);

/* virtio_blk.c, virtio_net.c, virtio_balloon.c: probe a device at boot.
 * `slot`: the virtio_mmio.device= entry, or -1 for a PCI function. */
void virtio_blk_probe(int slot, const struct virtio_dev *found);
void virtio_net_probe(int slot, u64 base, u32 irq);
void virtio_balloon_probe(int slot, u64 base, u32 irq);
