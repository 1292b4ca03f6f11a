/*
 * PCI Express enumeration through ECAM, the way a firmware-less kernel
 * finds it: the RSDP in the BIOS area, then the XSDT (or RSDT), then the
 * MCFG's first allocation. Nothing here depends on virga-vmm's addresses,
 * so the same scan runs on QEMU's q35.
 */
#include "probe.h"

#define BIOS_AREA_START 0xe0000
#define BIOS_AREA_END   0x100000

static bool checksum_ok(const u8 *p, u32 len)
{
    u8 sum = 0;
    for (u32 i = 0; i < len; i++)
        sum = (u8)(sum + p[i]);
    return sum == 0;
}

static u32 rd32(u64 a) { u32 v; memcpy(&v, phys(a), 4); return v; }
static u64 rd64(u64 a) { u64 v; memcpy(&v, phys(a), 8); return v; }

static u64 find_rsdp(void)
{
    for (u64 a = BIOS_AREA_START; a < BIOS_AREA_END; a += 16) {
        const u8 *p = phys(a);
        if (!memcmp(p, "RSD PTR ", 8) && checksum_ok(p, 20))
            return a;
    }
    return 0;
}

/* The table with `sig` listed by the RSDP's XSDT (revision 2+) or RSDT. */
static u64 find_table(const char *sig)
{
    u64 rsdp = find_rsdp();
    if (!rsdp)
        return 0;
    const u8 *r = phys(rsdp);
    bool xsdt = r[15] >= 2 && rd64(rsdp + 24) != 0;
    u64 root = xsdt ? rd64(rsdp + 24) : rd32(rsdp + 16);
    if (!root || root >= (1ull << 32))
        return 0;
    u32 len = rd32(root + 4), entry = xsdt ? 8 : 4;
    for (u32 off = 36; off + entry <= len; off += entry) {
        u64 table = xsdt ? rd64(root + off) : rd32(root + off);
        if (table && table < (1ull << 32) && !memcmp(phys(table), sig, 4))
            return table;
    }
    return 0;
}

bool pci_ecam(struct pci_ecam *out)
{
    u64 mcfg = find_table("MCFG");
    if (!mcfg || rd32(mcfg + 4) < 60)
        return false;
    out->base = rd64(mcfg + 44);
    out->first_bus = *(const u8 *)phys(mcfg + 54);
    out->last_bus = *(const u8 *)phys(mcfg + 55);
    return out->base != 0 && out->base < (1ull << 32);
}

static volatile u32 *config_reg(const struct pci_ecam *e, u32 bus, u32 dev, u32 fn, u32 reg)
{
    return phys(e->base + ((u64)(bus - e->first_bus) << 20) + (dev << 15) + (fn << 12) + reg);
}

u32 pci_read32(const struct pci_ecam *e, u32 bus, u32 dev, u32 fn, u32 reg)
{
    return *config_reg(e, bus, dev, fn, reg);
}

void pci_write32(const struct pci_ecam *e, u32 bus, u32 dev, u32 fn, u32 reg, u32 value)
{
    *config_reg(e, bus, dev, fn, reg) = value;
}

void pci_each_function(const struct pci_ecam *e, u32 bus, pci_visit visit, void *ctx)
{
    for (u32 dev = 0; dev < 32; dev++) {
        for (u32 fn = 0; fn < 8; fn++) {
            u32 id = pci_read32(e, bus, dev, fn, 0);
            if ((id & 0xffff) == 0xffff) {
                if (fn == 0)
                    break;
                continue;
            }
            visit(e, bus, dev, fn, id, ctx);
            /* Header type bit 7: more functions than 0. */
            if (fn == 0 && !(pci_read32(e, bus, dev, 0, 0xc) & 0x800000))
                break;
        }
    }
}

struct below {
    pci_visit visit;
    void *ctx;
};

static void visit_below(const struct pci_ecam *e, u32 bus, u32 dev, u32 fn, u32 id, void *ctx)
{
    struct below *b = ctx;
    b->visit(e, bus, dev, fn, id, b->ctx);
    /* A bridge (type 1 header): its secondary bus, as firmware numbered it. */
    u32 secondary = (pci_read32(e, bus, dev, fn, 0x18) >> 8) & 0xff;
    if ((pci_read32(e, bus, dev, fn, 0xc) & 0x7f0000) == 0x10000 && secondary > bus && secondary <= e->last_bus)
        pci_each_function(e, secondary, visit_below, ctx);
}

void pci_each_function_below(const struct pci_ecam *e, u32 bus, pci_visit visit, void *ctx)
{
    struct below b = { visit, ctx };
    pci_each_function(e, bus, visit_below, &b);
}

static void list_function(const struct pci_ecam *e, u32 bus, u32 dev, u32 fn, u32 id, void *ctx)
{
    u32 class_rev = pci_read32(e, bus, dev, fn, 8);
    kprintf("pci %02x:%02x.%x %04x:%04x %06x\n", bus, dev, fn, id & 0xffff, id >> 16, class_rev >> 8);
    (*(u32 *)ctx)++;
}

/* `pci`: one line per function present, `pci BB:DD.F VVVV:DDDD CCCCCC`. */
void pci_scan(void)
{
    struct pci_ecam e;
    if (!pci_ecam(&e)) {
        kprintf("ERR pci no MCFG\n");
        return;
    }
    kprintf("pci ecam 0x%lx buses %02x-%02x\n", e.base, e.first_bus, e.last_bus);
    u32 found = 0;
    for (u32 bus = e.first_bus; bus <= e.last_bus; bus++)
        pci_each_function(&e, bus, list_function, &found);
    kprintf("OK pci %u\n", found);
}

/* `pci show BB:DD.F`: each BAR (address, size by the sizing protocol with
 * decoding off meanwhile, kind) and each capability, with the fields of a
 * virtio one (vendor 1af4) and of MSI-X. */
void pci_show(u32 bus, u32 dev, u32 fn)
{
    struct pci_ecam e;
    if (!pci_ecam(&e)) {
        kprintf("ERR pci no MCFG\n");
        return;
    }
    u32 id = bus < e.first_bus || bus > e.last_bus ? 0xffffffff : pci_read32(&e, bus, dev, fn, 0);
    if ((id & 0xffff) == 0xffff) {
        kprintf("ERR pci no function %02x:%02x.%x\n", bus, dev, fn);
        return;
    }
    u32 command = pci_read32(&e, bus, dev, fn, 4) & 0xffff;
    bool bridge = (pci_read32(&e, bus, dev, fn, 0xc) & 0x7f0000) == 0x10000;
    pci_write32(&e, bus, dev, fn, 4, command & ~3u);
    /* A bridge's header has two BARs, then its bus numbers and windows. */
    for (u32 bar = 0; bar < (bridge ? 2u : 6u); bar++) {
        u32 reg = 0x10 + 4 * bar;
        u32 lo = pci_read32(&e, bus, dev, fn, reg);
        bool io = lo & 1, wide = !io && (lo & 6) == 4;
        pci_write32(&e, bus, dev, fn, reg, 0xffffffff);
        u64 mask = pci_read32(&e, bus, dev, fn, reg) & (io ? ~3u : ~0xfu);
        pci_write32(&e, bus, dev, fn, reg, lo);
        u64 address = lo & (io ? ~3u : ~0xfu);
        if (wide) {
            u32 hi = pci_read32(&e, bus, dev, fn, reg + 4);
            pci_write32(&e, bus, dev, fn, reg + 4, 0xffffffff);
            mask |= (u64)pci_read32(&e, bus, dev, fn, reg + 4) << 32;
            pci_write32(&e, bus, dev, fn, reg + 4, hi);
            address |= (u64)hi << 32;
        } else {
            mask |= io ? 0xffffffffffff0000ull : 0xffffffff00000000ull;
        }
        if (mask != 0xffffffff00000000ull && mask != 0xffffffffffff0000ull && mask != 0)
            kprintf("pci %02x:%02x.%x bar%u 0x%lx size=0x%lx %s\n", bus, dev, fn, bar, address, ~mask + 1,
                    io ? "io" : wide ? "mem64" : "mem32");
        if (wide)
            bar++;
    }
    pci_write32(&e, bus, dev, fn, 4, command);
    if (bridge) {
        u32 buses = pci_read32(&e, bus, dev, fn, 0x18), memory = pci_read32(&e, bus, dev, fn, 0x20);
        kprintf("pci %02x:%02x.%x bridge buses %02x-%02x-%02x memory 0x%x-0x%x\n", bus, dev, fn, buses & 0xff,
                (buses >> 8) & 0xff, (buses >> 16) & 0xff, (memory & 0xfff0) << 16, (memory & 0xfff00000) | 0xfffff);
    }
    bool virtio = (id & 0xffff) == 0x1af4;
    u32 cap = (pci_read32(&e, bus, dev, fn, 4) & (0x10u << 16)) ? pci_read32(&e, bus, dev, fn, 0x34) & 0xfc : 0;
    for (int guard = 0; cap && guard < 48; guard++) {
        u32 head = pci_read32(&e, bus, dev, fn, cap);
        u32 cap_id = head & 0xff;
        kprintf("pci %02x:%02x.%x cap 0x%02x id=0x%02x", bus, dev, fn, cap, cap_id);
        if (cap_id == 0x09 && virtio) {
            kprintf(" virtio type=%u bar=%u offset=0x%x length=0x%x", head >> 24,
                    pci_read32(&e, bus, dev, fn, cap + 4) & 0xff, pci_read32(&e, bus, dev, fn, cap + 8),
                    pci_read32(&e, bus, dev, fn, cap + 12));
            if ((head >> 24) == 2)
                kprintf(" multiplier=%u", pci_read32(&e, bus, dev, fn, cap + 16));
        } else if (cap_id == 0x11) {
            u32 table = pci_read32(&e, bus, dev, fn, cap + 4), pba = pci_read32(&e, bus, dev, fn, cap + 8);
            kprintf(" msix vectors=%u table=bar%u+0x%x pba=bar%u+0x%x", ((head >> 16) & 0x7ff) + 1, table & 7,
                    table & ~7u, pba & 7, pba & ~7u);
        } else if (cap_id == 0x10) {
            kprintf(" pcie type=%u slot=%u sltcap=0x%x lnkcap=0x%x", (head >> 20) & 0xf, (head >> 24) & 1,
                    pci_read32(&e, bus, dev, fn, cap + 0x14), pci_read32(&e, bus, dev, fn, cap + 0xc));
        } else if (cap_id == 0x05) {
            kprintf(" msi 64bit=%u", (head >> 23) & 1);
        }
        kprintf("\n");
        cap = (head >> 8) & 0xfc;
    }
    kprintf("OK pci show\n");
}

/* The slot of the root port at bus:dev.fn (its PCI Express capability's
 * slot registers, as a hot-plug driver uses them). */
static u32 pcie_cap(const struct pci_ecam *e, u32 bus, u32 dev, u32 fn)
{
    u32 cap = (pci_read32(e, bus, dev, fn, 4) & (0x10u << 16)) ? pci_read32(e, bus, dev, fn, 0x34) & 0xfc : 0;
    for (int guard = 0; cap && guard < 48; guard++) {
        u32 head = pci_read32(e, bus, dev, fn, cap);
        if ((head & 0xff) == 0x10)
            return cap;
        cap = (head >> 8) & 0xfc;
    }
    return 0;
}

static u32 msi_cap(const struct pci_ecam *e, u32 bus, u32 dev, u32 fn)
{
    u32 cap = pci_read32(e, bus, dev, fn, 0x34) & 0xfc;
    for (int guard = 0; cap && guard < 48; guard++) {
        u32 head = pci_read32(e, bus, dev, fn, cap);
        if ((head & 0xff) == 0x05)
            return cap;
        cap = (head >> 8) & 0xfc;
    }
    return 0;
}

static volatile u32 slot_irqs;
void pci_slot_irq(void) { slot_irqs++; }

/* `pci slot BB:DD.F [arm|ack|on|off]`: what a hot-plug driver does with a
 * root port's slot, one step at a time. arm: its MSI to this CPU and the
 * slot's events (attention button, presence, link) and hot-plug interrupt
 * enabled; ack: the pending events cleared (written back as ones); on/off:
 * slot power and power indicator. Then the slot's state and how many
 * hot-plug interrupts came so far. */
void pci_slot(u32 bus, u32 dev, u32 fn, const char *action)
{
    struct pci_ecam e;
    u32 cap;
    if (!pci_ecam(&e) || (pci_read32(&e, bus, dev, fn, 0) & 0xffff) == 0xffff || !(cap = pcie_cap(&e, bus, dev, fn))) {
        kprintf("ERR pci slot: no PCI Express port at %02x:%02x.%x\n", bus, dev, fn);
        return;
    }
    /* Slot control is the low half, slot status (write one to clear) the high. */
    u32 reg = cap + 0x18, slot = pci_read32(&e, bus, dev, fn, reg), control = slot & 0xffff;
    if (!strcmp(action, "arm")) {
        u32 msi = msi_cap(&e, bus, dev, fn);
        if (!msi) {
            kprintf("ERR pci slot: no MSI capability\n");
            return;
        }
        pci_write32(&e, bus, dev, fn, msi + 4, 0xfee00000u | (lapic_id() << 12));
        pci_write32(&e, bus, dev, fn, msi + 8, 0);
        pci_write32(&e, bus, dev, fn, msi + 12, VEC_GSI_BASE + PCI_SLOT_IRQ);
        pci_write32(&e, bus, dev, fn, msi, pci_read32(&e, bus, dev, fn, msi) | (1u << 16));
        pci_write32(&e, bus, dev, fn, reg, control | 0x1029);
    } else if (!strcmp(action, "ack")) {
        pci_write32(&e, bus, dev, fn, reg, slot);
    } else if (!strcmp(action, "on")) {
        pci_write32(&e, bus, dev, fn, reg, (control & ~0x0700u) | 0x0100);
    } else if (!strcmp(action, "off")) {
        pci_write32(&e, bus, dev, fn, reg, control | 0x0700);
    } else if (*action) {
        kprintf("ERR pci slot: unknown action '%s'\n", action);
        return;
    }
    /* Commands run with interrupts off, and KVM may deliver an interrupt
     * this write raised a little later: sleep 20 ms with them on first. */
    delay_us(20000);
    slot = pci_read32(&e, bus, dev, fn, reg);
    kprintf("pci %02x:%02x.%x slot ctl=0x%04x sta=0x%04x link=0x%04x irqs=%u\n", bus, dev, fn, slot & 0xffff,
            slot >> 16, pci_read32(&e, bus, dev, fn, cap + 0x10) >> 16, slot_irqs);
    kprintf("OK pci slot\n");
}
