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
    pci_write32(&e, bus, dev, fn, 4, command & ~3u);
    for (u32 bar = 0; bar < 6; bar++) {
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
        }
        kprintf("\n");
        cap = (head >> 8) & 0xfc;
    }
    kprintf("OK pci show\n");
}
