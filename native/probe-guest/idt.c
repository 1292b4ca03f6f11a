/* IDT and the C side of interrupt dispatch. */
#include "probe.h"
#include "io.h"

struct idt_gate {
    u16 off_lo;
    u16 sel;
    u8 ist;
    u8 type;      /* 0x8e: present, DPL 0, 64-bit interrupt gate (IF cleared) */
    u16 off_mid;
    u32 off_hi;
    u32 zero;
} __attribute__((packed));

static struct idt_gate idt[256] __attribute__((aligned(16)));
static struct {
    u16 limit;
    u64 base;
} __attribute__((packed)) idt_ptr;

extern const char isr_stubs[];

void idt_load(void)
{
    __asm__ __volatile__("lidt %0" : : "m"(idt_ptr));
}

void idt_init(void)
{
    /* The stubs sit in one 4 KiB-aligned block below 4 GiB (isr.S), so the
     * gates differ only in off_lo, by 16 per vector: one template plus an
     * add per gate instead of assembling each (every guest instruction is
     * emulated under PVM). */
    u64 a = (u64)isr_stubs;
    struct idt_gate g = {
        .off_lo = (u16)a, .sel = SEL_CODE64, .ist = 0, .type = 0x8e,
        .off_mid = (u16)(a >> 16), .off_hi = (u32)(a >> 32), .zero = 0,
    };
    u64 words[2];
    __builtin_memcpy(words, &g, sizeof(words));
    u64 *gate = (u64 *)__builtin_assume_aligned(idt, 16);
    for (int v = 0; v < 256; v++) {
        gate[2 * v] = words[0] + 16 * (u64)v;
        gate[2 * v + 1] = words[1];
    }
    idt_ptr.limit = sizeof(idt) - 1;
    idt_ptr.base = (u64)idt;
    idt_load();
}

static void exception(const struct irq_frame *f)
{
    u64 cr2;
    __asm__ __volatile__("mov %%cr2, %0" : "=r"(cr2));
    kprintf_nolock("PROBE panic exception vec=%lu err=0x%lx rip=0x%lx cr2=0x%lx\n",
                   f->vector, f->error, f->rip, cr2);
    halt_forever();
}

static u32 com1_gsi_cache = ~0u;
void isr_set_com1_gsi(u32 gsi) { com1_gsi_cache = gsi; }

void isr_dispatch(struct irq_frame *f)
{
    u64 v = f->vector;
    if (v < 32) {
        exception(f);
    } else if (v == VEC_TIMER) {
        timer_irq();
        lapic_eoi();
    } else if (v == VEC_WAKEUP) {
        lapic_eoi();
    } else if (v >= VEC_GSI_BASE && v <= VEC_GSI_LAST) {
        u32 gsi = (u32)(v - VEC_GSI_BASE);
        if (gsi == com1_gsi_cache)
            serial_irq();
        if (gsi == PCI_SLOT_IRQ)
            pci_slot_irq();
        virtio_irq(gsi);
        lapic_eoi();
    } else if (v == VEC_SPURIOUS) {
        /* Spurious LAPIC interrupts are not in service: no EOI. */
    } else {
        lapic_eoi();
    }
}
