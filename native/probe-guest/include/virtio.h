/* virtio-mmio (version 2, "modern") transport and split virtqueues,
 * virtio 1.x spec sections 4.2 and 2.7. */
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

#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLK 2

#define VQ_SIZE 8   /* one request in flight needs 3 descriptors */

#define VRING_DESC_F_NEXT  1
#define VRING_DESC_F_WRITE 2

struct vq_desc {
    u64 addr;
    u32 len;
    u16 flags;
    u16 next;
};

/* One page per queue: descriptor table (16-byte aligned), available ring
 * (2-byte aligned) and used ring (4-byte aligned) in one struct. */
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

struct virtio_dev {
    u64 base;
    u32 irq;
    u16 qsize;
    u16 last_used;
    struct virtq *vq;
};

u32 vm_read(const struct virtio_dev *d, u32 off);
void vm_write(const struct virtio_dev *d, u32 off, u32 val);
u64 vm_device_features(const struct virtio_dev *d);
/* Status ACK|DRIVER, features, FEATURES_OK, queue 0 setup; DRIVER_OK is left
 * to the caller. Returns false (with STATUS_FAILED set) on refusal. */
bool virtio_init(struct virtio_dev *d, u64 driver_features, struct virtq *vq);
void virtio_driver_ok(struct virtio_dev *d);
/* Post the descriptor chain starting at head, notify, sleep until the device
 * returns it (used-ring interrupt). false on timeout. Call with IF=0. */
bool virtio_submit_wait(struct virtio_dev *d, u16 head, u32 timeout_us);

/* virtio_blk.c */
void virtio_blk_probe(int slot, u64 base, u32 irq);
void virtio_blk_irq(u32 gsi);
