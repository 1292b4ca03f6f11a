/*
 * Local APIC (xAPIC, MMIO) and I/O APIC(s).
 *
 * Every LAPIC register is a 32-bit MMIO access at base + offset, base
 * 0xfee00000 unless the MP table says otherwise; each CPU sees its own LAPIC
 * there. An IOAPIC is two registers: IOREGSEL at +0x00 selects, IOWIN at
 * +0x10 reads/writes; redirection entry i is the register pair 0x10 + 2i
 * (low) / 0x11 + 2i (high).
 */
#include "probe.h"
#include "io.h"

#define LAPIC_DEFAULT 0xfee00000u
#define LAPIC_ID      0x020
#define LAPIC_TPR     0x080
#define LAPIC_EOI     0x0b0
#define LAPIC_SVR     0x0f0
#define LAPIC_ICR_LO  0x300
#define LAPIC_ICR_HI  0x310
#define SVR_ENABLE    0x100
#define ICR_PENDING   (1u << 12)

#define IOAPIC_DEFAULT 0xfec00000u
#define IOREGSEL 0x00
#define IOWIN    0x10
#define IOAPIC_VER 1
#define RTE_MASKED (1u << 16)

static u64 lapic_base = LAPIC_DEFAULT;

u32 lapic_read(u32 reg) { return mmio_read32(lapic_base + reg); }
void lapic_write(u32 reg, u32 val) { mmio_write32(lapic_base + reg, val); }

/* SVR is 0 after reset and after INIT (software-disabled): set the enable
 * bit; spurious interrupts go to 0xff. Each CPU does this for its own LAPIC. */
void lapic_enable(void)
{
    lapic_write(LAPIC_SVR, SVR_ENABLE | VEC_SPURIOUS);
    lapic_write(LAPIC_TPR, 0);
}

void lapic_init(void)
{
    if (mp.lapic_addr)
        lapic_base = mp.lapic_addr;
    lapic_enable();
    lapic_write(LAPIC_TIMER_LVT, 1u << 16);   /* masked until used */
}

u32 lapic_id(void)
{
    return lapic_read(LAPIC_ID) >> 24;
}

void lapic_eoi(void)
{
    lapic_write(LAPIC_EOI, 0);
}

void lapic_send_ipi(u32 apic_id, u32 icr_low)
{
    /* Writing the low half sends; the destination must be set first. */
    lapic_write(LAPIC_ICR_HI, apic_id << 24);
    lapic_write(LAPIC_ICR_LO, icr_low);
    for (int i = 0; i < 1000 && (lapic_read(LAPIC_ICR_LO) & ICR_PENDING); i++)
        cpu_relax();
}

static u32 ioapic_read(u64 base, u32 reg)
{
    mmio_write32(base + IOREGSEL, reg);
    return mmio_read32(base + IOWIN);
}

static void ioapic_write(u64 base, u32 reg, u32 val)
{
    mmio_write32(base + IOREGSEL, reg);
    mmio_write32(base + IOWIN, val);
}

void ioapic_init(void)
{
    if (mp.nioapics == 0) {
        /* No MP table entry: the one conventional IOAPIC at 0xfec00000. */
        mp.nioapics = 1;
        mp.ioapic[0].id = 0;
        mp.ioapic[0].addr = IOAPIC_DEFAULT;
    }
    /* GSIs are numbered across IOAPICs in table order (the MP table has no
     * GSI base field; this is the convention Linux uses too). */
    u32 gsi = 0;
    for (int i = 0; i < mp.nioapics; i++) {
        struct mp_ioapic *io = &mp.ioapic[i];
        io->pins = ((ioapic_read(io->addr, IOAPIC_VER) >> 16) & 0xff) + 1;
        io->gsi_base = gsi;
        gsi += io->pins;
        for (u32 p = 0; p < io->pins; p++)
            ioapic_write(io->addr, 0x10 + 2 * p, RTE_MASKED);
    }
}

bool ioapic_route(u32 gsi, u8 vector, u32 dest_apic)
{
    for (int i = 0; i < mp.nioapics; i++) {
        struct mp_ioapic *io = &mp.ioapic[i];
        if (gsi < io->gsi_base || gsi >= io->gsi_base + io->pins)
            continue;
        u32 pin = gsi - io->gsi_base;
        /* Fixed delivery, physical destination, active high, edge. */
        ioapic_write(io->addr, 0x11 + 2 * pin, dest_apic << 24);
        ioapic_write(io->addr, 0x10 + 2 * pin, vector);
        return true;
    }
    return false;
}
