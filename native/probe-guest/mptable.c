/*
 * Intel MultiProcessor Specification 1.4 tables: the floating pointer
 * "_MP_" (16 bytes, 16-byte aligned) points at the "PCMP" configuration
 * table, whose entries list processors (20 bytes each), buses, IOAPICs and
 * interrupt assignments (8 bytes each).
 */
#include "probe.h"

struct mp_info mp;

struct mp_fp {
    char sig[4];          /* "_MP_" */
    u32 config;           /* physical address of the PCMP table */
    u8 length;            /* in 16-byte units: 1 */
    u8 rev;
    u8 checksum;
    u8 feature[5];        /* feature[0] != 0: a default config, no table */
} __attribute__((packed));

struct mp_config {
    char sig[4];          /* "PCMP" */
    u16 length;
    u8 rev;
    u8 checksum;
    char oem[8];
    char product[12];
    u32 oem_table;
    u16 oem_table_size;
    u16 entries;
    u32 lapic_addr;
    u16 ext_length;
    u8 ext_checksum;
    u8 reserved;
} __attribute__((packed));

enum { MP_CPU = 0, MP_BUS = 1, MP_IOAPIC = 2, MP_IOINT = 3, MP_LINT = 4 };
#define CPU_ENABLED 1
#define IOAPIC_ENABLED 1

/* Source-bus IRQ -> IOAPIC pin assignments for the ISA bus. */
struct isa_int {
    u8 irq, ioapic_id, pin;
};
static struct isa_int isa_ints[32];
static int n_isa_ints;

static u8 sum(const void *p, size_t n)
{
    const u8 *b = p;
    u8 s = 0;
    while (n--)
        s += *b++;
    return s;
}

static const struct mp_fp *scan(u64 start, u64 len)
{
    for (u64 a = start; a + 16 <= start + len; a += 16) {
        const struct mp_fp *fp = (const struct mp_fp *)a;
        if (fp->sig[0] == '_' && fp->sig[1] == 'M' && fp->sig[2] == 'P' &&
            fp->sig[3] == '_' && fp->length == 1 && sum(fp, 16) == 0)
            return fp;
    }
    return NULL;
}

static const struct mp_fp *find_fp(void)
{
    const struct mp_fp *fp;
    /* BDA 0x40e: EBDA segment; BDA 0x413: base memory size in KiB. A VMM
     * without a BIOS may leave both zero, hence the 639 KiB fallback. */
    u64 ebda = (u64)*(const volatile u16 *)phys(0x40e) << 4;
    u64 basemem = (u64)*(const volatile u16 *)phys(0x413) * 1024;
    if (ebda >= 0x80000 && ebda < 0xa0000 && (fp = scan(ebda, 1024)))
        return fp;
    if (basemem >= 0x80000 && basemem <= 0xa0000 && (fp = scan(basemem - 1024, 1024)))
        return fp;
    if ((fp = scan(0x9fc00, 1024)))
        return fp;
    return scan(0xf0000, 0x10000);
}

void mptable_parse(void)
{
    const struct mp_fp *fp = find_fp();
    if (!fp || fp->feature[0] != 0 || !fp->config)
        return;
    const struct mp_config *ct = (const struct mp_config *)(u64)fp->config;
    if (memcmp(ct->sig, "PCMP", 4) != 0 || sum(ct, ct->length) != 0)
        return;
    mp.found = true;
    mp.lapic_addr = ct->lapic_addr;

    int isa_bus = -1;
    const u8 *p = (const u8 *)(ct + 1);
    const u8 *end = (const u8 *)ct + ct->length;
    /* Walk by table length, not ct->entries: QEMU's qboot (microvm's
     * firmware) writes a zero entry count, and Linux ignores it too. */
    while (p < end) {
        switch (p[0]) {
        case MP_CPU:
            if ((p[3] & CPU_ENABLED) && mp.ncpus < MAX_CPUS)
                mp.cpu_apic[mp.ncpus++] = p[1];
            p += 20;
            break;
        case MP_BUS:
            if (memcmp(p + 2, "ISA   ", 6) == 0)
                isa_bus = p[1];
            p += 8;
            break;
        case MP_IOAPIC:
            if ((p[3] & IOAPIC_ENABLED) && mp.nioapics < (int)ARRAY_SIZE(mp.ioapic)) {
                struct mp_ioapic *io = &mp.ioapic[mp.nioapics++];
                io->id = p[1];
                __builtin_memcpy(&io->addr, p + 4, 4);
            }
            p += 8;
            break;
        case MP_IOINT:
            /* Bus entries come first in a valid table, so isa_bus is known.
             * Only INT-type (p[1] == 0) assignments route an IRQ. */
            if (p[1] == 0 && p[4] == isa_bus && isa_bus >= 0 &&
                n_isa_ints < (int)ARRAY_SIZE(isa_ints)) {
                isa_ints[n_isa_ints].irq = p[5];
                isa_ints[n_isa_ints].ioapic_id = p[6];
                isa_ints[n_isa_ints].pin = p[7];
                n_isa_ints++;
            }
            p += 8;
            break;
        case MP_LINT:
            p += 8;
            break;
        default:
            return;   /* unknown type: its length is unknown, stop */
        }
    }
}

/* Valid after ioapic_init() has filled in each IOAPIC's GSI base. */
u32 mp_isa_irq_to_gsi(u8 irq)
{
    for (int i = 0; i < n_isa_ints; i++) {
        if (isa_ints[i].irq != irq)
            continue;
        for (int j = 0; j < mp.nioapics; j++)
            if (mp.ioapic[j].id == isa_ints[i].ioapic_id || isa_ints[i].ioapic_id == 0xff)
                return mp.ioapic[j].gsi_base + isa_ints[i].pin;
    }
    return irq;   /* no assignment: ISA IRQs are identity mapped */
}
