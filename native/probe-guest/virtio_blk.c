/*
 * virtio-blk: one request at a time on queue 0, as a three-descriptor chain
 * header (device reads) -> 512-byte data -> status byte (device writes).
 * An empty hot-plug slot is a disk of capacity 0: its queue is set up at
 * boot like any other, and `blk <n> info` re-reads the capacity after a
 * configuration-change interrupt (hot-plug or unplug).
 */
#include "probe.h"
#include "io.h"
#include "virtio.h"

#define VIRTIO_BLK_F_RO    5
#define VIRTIO_BLK_F_FLUSH 9

#define VIRTIO_BLK_T_IN    0
#define VIRTIO_BLK_T_OUT   1
#define VIRTIO_BLK_T_FLUSH 4

#define MAX_BLK 16
#define REQ_TIMEOUT_US 5000000

struct blk_req {
    u32 type;
    u32 reserved;
    u64 sector;
};

/* Device-visible memory: per device one queue page and one buffer page. */
struct blk_dma {
    struct virtq vq;
    struct blk_req hdr;
    u8 status;
    u8 data[512] __attribute__((aligned(512)));
} __attribute__((aligned(4096)));

static struct blk_dma dma[MAX_BLK] __attribute__((section(".noinit")));

struct blk {
    struct virtio_dev dev;
    struct vqueue q;
    u64 capacity;
    bool ro;
};
static struct blk blks[MAX_BLK];
static int n_blk;

int virtio_blk_count(void) { return n_blk; }

static u64 read_capacity(struct virtio_dev *d)
{
    u64 c;
    virtio_config_read(d, 0, &c, sizeof(c), 4);
    return c;
}

void virtio_blk_probe(int slot, const struct virtio_dev *found)
{
    if (n_blk >= MAX_BLK)
        return;
    struct blk *b = &blks[n_blk];
    b->dev = *found;
    u64 dev_features = vm_device_features(&b->dev);
    u64 want = (1ull << VIRTIO_F_VERSION_1) |
               (dev_features & ((1ull << VIRTIO_BLK_F_RO) | (1ull << VIRTIO_BLK_F_FLUSH)));
    if (!(dev_features & (1ull << VIRTIO_F_VERSION_1)) || !virtio_negotiate(&b->dev, want) ||
        !virtio_queue_init(&b->dev, &b->q, 0, &dma[n_blk].vq, 3)) {
        virtio_fail(&b->dev);
        if (found->pci)
            kprintf("PROBE virtio-pci %02x:%02x.%x init failed\n", found->pci_addr >> 8,
                    (found->pci_addr >> 3) & 0x1f, found->pci_addr & 7);
        else
            kprintf("PROBE virtio %d init failed\n", slot);
        return;
    }
    b->ro = (want >> VIRTIO_BLK_F_RO) & 1;
    b->capacity = read_capacity(&b->dev);
    virtio_driver_ok(&b->dev);
    if (found->pci)
        kprintf("PROBE virtio-blk %d pci=%02x:%02x.%x capacity=%lu ro=%d\n", n_blk, found->pci_addr >> 8,
                (found->pci_addr >> 3) & 0x1f, found->pci_addr & 7, b->capacity, b->ro);
    else
        kprintf("PROBE virtio-blk %d base=0x%lx irq=%u capacity=%lu ro=%d\n",
                n_blk, found->base, found->irq, b->capacity, b->ro);
    n_blk++;
}

void virtio_blk_info(int n, u64 *capacity, bool *ro, u32 *changes)
{
    struct blk *b = &blks[n];
    take_pending_interrupts();
    b->capacity = read_capacity(&b->dev);
    *capacity = b->capacity;
    *ro = b->ro;
    *changes = b->dev.config_changes;
}

static int do_request(int n, u32 type, u64 sector, bool has_data, bool dev_writes)
{
    struct blk *b = &blks[n];
    struct blk_dma *m = &dma[n];
    struct vq_desc *desc = m->vq.desc;
    m->hdr.type = type;
    m->hdr.reserved = 0;
    m->hdr.sector = sector;
    m->status = 0xff;

    desc[0].addr = (u64)&m->hdr;
    desc[0].len = sizeof(m->hdr);
    desc[0].flags = VRING_DESC_F_NEXT;
    desc[0].next = 1;
    u16 st = 1;
    if (has_data) {
        desc[1].addr = (u64)m->data;
        desc[1].len = sizeof(m->data);
        desc[1].flags = VRING_DESC_F_NEXT | (dev_writes ? VRING_DESC_F_WRITE : 0);
        desc[1].next = 2;
        st = 2;
    }
    desc[st].addr = (u64)&m->status;
    desc[st].len = 1;
    desc[st].flags = VRING_DESC_F_WRITE;
    desc[st].next = 0;

    if (!virtio_submit_wait(&b->dev, &b->q, 0, REQ_TIMEOUT_US))
        return -1;
    return *(volatile u8 *)&m->status;
}

int virtio_blk_rw(int n, bool write, u64 sector, u8 *buf)
{
    if (n < 0 || n >= n_blk)
        return -2;
    if (write)
        memcpy(dma[n].data, buf, 512);
    int s = do_request(n, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, sector, true, !write);
    if (!write && s == 0)
        memcpy(buf, dma[n].data, 512);
    return s;
}

int virtio_blk_flush(int n)
{
    if (n < 0 || n >= n_blk)
        return -2;
    return do_request(n, VIRTIO_BLK_T_FLUSH, 0, false, false);
}
