/*
 * virtio-net: receive queue 0 kept full of 2 KiB buffers, transmit queue 1
 * with one frame in flight. Every buffer starts with the 12-byte
 * virtio_net_hdr of a VERSION_1 device (num_buffers always present); with
 * MRG_RXBUF a frame may span several receive buffers. A NIC slot without a
 * backend is a device whose link is down (STATUS); a configuration-change
 * interrupt (hot-plug, unplug) makes us re-read the link.
 */
#include "probe.h"
#include "io.h"
#include "virtio.h"

#define VIRTIO_NET_F_MAC       5
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS    16
#define VIRTIO_NET_S_LINK_UP   1

#define CFG_MAC    0
#define CFG_STATUS 6

#define MAX_NET 4
#define NET_HDR 12
#define RX_BUF  2048
#define ETH_HDR 14
#define ETH_MAX 1514
#define TX_TIMEOUT_US 5000000

struct net_hdr {
    u8 flags;
    u8 gso_type;
    u16 hdr_len;
    u16 gso_size;
    u16 csum_start;
    u16 csum_offset;
    u16 num_buffers;
};

/* Device-visible memory of one NIC. */
struct net_dma {
    struct virtq rxq;
    struct virtq txq;
    u8 rx[VQ_SIZE][RX_BUF];
    u8 tx[NET_HDR + ETH_MAX] __attribute__((aligned(64)));
} __attribute__((aligned(4096)));

static struct net_dma dma[MAX_NET] __attribute__((section(".noinit")));
/* A received frame put back together from its buffers. */
static u8 frame[VQ_SIZE * RX_BUF] __attribute__((section(".noinit")));

struct net {
    struct virtio_dev dev;
    struct vqueue rxq, txq;
    u8 mac[6];
    bool has_status, mrg_rxbuf;
    volatile bool link_up;
};
static struct net nets[MAX_NET];
static int n_net;

int virtio_net_count(void) { return n_net; }

void format_mac(char *out, const u8 mac[6])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 6; i++) {
        out[3 * i] = hex[mac[i] >> 4];
        out[3 * i + 1] = hex[mac[i] & 15];
        out[3 * i + 2] = i < 5 ? ':' : 0;
    }
}

static bool read_link(struct net *t)
{
    if (!t->has_status)
        return true;   /* without STATUS the link is always up */
    u16 st;
    virtio_config_read(&t->dev, CFG_STATUS, &st, 2, 2);
    return st & VIRTIO_NET_S_LINK_UP;
}

static void net_irq(struct virtio_dev *d, u32 isr)
{
    if (isr & VIRTIO_INT_CONFIG) {
        struct net *t = (struct net *)d;
        t->link_up = read_link(t);
    }
}

void virtio_net_probe(int slot, u64 base, u32 irq)
{
    if (n_net >= MAX_NET)
        return;
    struct net *t = &nets[n_net];
    struct net_dma *m = &dma[n_net];
    t->dev.base = base;
    t->dev.irq = irq;
    t->dev.on_irq = net_irq;
    u64 offered = vm_device_features(&t->dev);
    u64 want = (1ull << VIRTIO_F_VERSION_1) |
               (offered & ((1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_STATUS) |
                           (1ull << VIRTIO_NET_F_MRG_RXBUF)));
    if (!(offered & (1ull << VIRTIO_F_VERSION_1)) || !virtio_negotiate(&t->dev, want) ||
        !virtio_queue_init(&t->dev, &t->rxq, 0, &m->rxq, 1) ||
        !virtio_queue_init(&t->dev, &t->txq, 1, &m->txq, 1)) {
        virtio_fail(&t->dev);
        kprintf("PROBE virtio %d init failed\n", slot);
        return;
    }
    t->has_status = (want >> VIRTIO_NET_F_STATUS) & 1;
    t->mrg_rxbuf = (want >> VIRTIO_NET_F_MRG_RXBUF) & 1;

    /* Receive buffer i is descriptor i, for good: a used id names its buffer. */
    struct virtq *r = &m->rxq;
    for (u16 i = 0; i < t->rxq.size; i++) {
        r->desc[i].addr = (u64)m->rx[i];
        r->desc[i].len = RX_BUF;
        r->desc[i].flags = VRING_DESC_F_WRITE;
        r->avail.ring[i] = i;
    }
    barrier();
    r->avail.idx = t->rxq.size;
    m->txq.desc[0].addr = (u64)m->tx;

    if (want & (1ull << VIRTIO_NET_F_MAC)) {
        virtio_config_read(&t->dev, CFG_MAC, t->mac, 6, 1);
    } else {
        /* The driver picks one: locally administered, per NIC. */
        static const u8 local[6] = { 0x02, 0, 0, 0, 0, 0 };
        memcpy(t->mac, local, 6);
        t->mac[5] = (u8)n_net;
    }
    t->link_up = read_link(t);
    virtio_driver_ok(&t->dev);
    vq_notify(&t->dev, &t->rxq);
    char mac[18];
    format_mac(mac, t->mac);
    kprintf("PROBE virtio-net %d base=0x%lx irq=%u mac=%s link=%s\n", n_net, base, irq, mac,
            t->link_up ? "up" : "down");
    n_net++;
}

void virtio_net_info(int n, struct net_info *out)
{
    struct net *t = &nets[n];
    take_pending_interrupts();
    t->link_up = read_link(t);
    memcpy(out->mac, t->mac, 6);
    out->link_up = t->link_up;
    out->changes = t->dev.config_changes;
}

bool virtio_net_send(int n, const u8 dst[6], u16 ethertype, u32 frame_len, u32 seed)
{
    struct net *t = &nets[n];
    struct net_dma *m = &dma[n];
    u8 *p = m->tx;
    if (frame_len < ETH_HDR || frame_len > ETH_MAX)
        return false;
    /* No offloads taken: an all-zero header (num_buffers is unused on
     * transmit). Header and frame in one descriptor, as Linux sends them. */
    memset(p, 0, NET_HDR);
    memcpy(p + NET_HDR, dst, 6);
    memcpy(p + NET_HDR + 6, t->mac, 6);
    p[NET_HDR + 12] = (u8)(ethertype >> 8);
    p[NET_HDR + 13] = (u8)ethertype;
    pattern_fill(p + NET_HDR + ETH_HDR, frame_len - ETH_HDR, seed);
    m->txq.desc[0].len = NET_HDR + frame_len;
    m->txq.desc[0].flags = 0;
    return virtio_submit_wait(&t->dev, &t->txq, 0, TX_TIMEOUT_US);
}

/* Takes the next frame off the used ring into `frame` and gives its
 * buffers back to the device. Returns the frame's length. */
static u32 take_frame(struct net *t, struct net_dma *m)
{
    u32 id, len, total = 0, nbufs = 1;
    for (u32 k = 0; k < nbufs && vq_pop(&t->rxq, &id, &len); k++) {
        if (id >= t->rxq.size)
            break;   /* not a buffer of ours: nothing to give back */
        const u8 *b = m->rx[id];
        if (len > RX_BUF)
            len = RX_BUF;
        if (k == 0) {
            const struct net_hdr *h = (const struct net_hdr *)b;
            if (t->mrg_rxbuf && h->num_buffers > 1)
                nbufs = h->num_buffers;
            b += NET_HDR;
            len = len > NET_HDR ? len - NET_HDR : 0;
        }
        if (len > sizeof(frame) - total)
            len = (u32)(sizeof(frame) - total);
        memcpy(frame + total, b, len);
        total += len;
        vq_push(&t->rxq, (u16)id);
    }
    vq_notify(&t->dev, &t->rxq);
    return total;
}

bool virtio_net_recv(int n, u32 timeout_us, u16 ethertype, struct net_frame *out)
{
    struct net *t = &nets[n];
    timer_oneshot_us(timeout_us);
    for (;;) {
        while (!vq_has_used(&t->rxq) && !timer_expired())
            wait_for_interrupt();
        if (!vq_has_used(&t->rxq))
            break;
        u32 len = take_frame(t, &dma[n]);
        if (len < ETH_HDR)
            continue;
        if (ethertype && ((u16)(frame[12] << 8 | frame[13])) != ethertype)
            continue;
        timer_stop();
        out->len = len;
        out->data = frame;
        return true;
    }
    timer_stop();
    return false;
}
