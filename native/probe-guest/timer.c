/*
 * LAPIC timer. KVM's and QEMU's LAPIC timers count at 1 GHz before the
 * divider (KVM: APIC_BUS_CYCLE_NS = 1; QEMU: counts in ns), so with divide-by
 * 16 one microsecond is 62.5 counts. Exact rates don't matter here; what
 * matters is that waiting is hlt, never a guest busy loop (every instruction
 * is emulated under PVM).
 */
#include "probe.h"
#include "io.h"

#define TIMER_PERIODIC (1u << 17)
#define DIV_16 0x3

volatile u64 timer_ticks;

void timer_irq(void)
{
    timer_ticks++;
}

static u32 us_to_count(u32 us)
{
    u64 c = (u64)us * 125 / 2;
    if (c == 0)
        c = 1;
    if (c > 0xffffffffu)
        c = 0xffffffffu;
    return (u32)c;
}

void timer_oneshot_us(u32 us)
{
    lapic_write(LAPIC_TIMER_DIV, DIV_16);
    lapic_write(LAPIC_TIMER_LVT, VEC_TIMER);
    lapic_write(LAPIC_TIMER_INIT, us_to_count(us));
}

void timer_periodic_us(u32 us)
{
    lapic_write(LAPIC_TIMER_DIV, DIV_16);
    lapic_write(LAPIC_TIMER_LVT, VEC_TIMER | TIMER_PERIODIC);
    lapic_write(LAPIC_TIMER_INIT, us_to_count(us));
}

void timer_stop(void)
{
    lapic_write(LAPIC_TIMER_INIT, 0);
    lapic_write(LAPIC_TIMER_LVT, 1u << 16);
}

/* A one-shot count reads 0 once it has expired (and after timer_stop). The
 * count, not timer_ticks, decides expiry: a stale interrupt from an earlier
 * one-shot may still be pending. */
bool timer_expired(void)
{
    return lapic_read(LAPIC_TIMER_CUR) == 0;
}

/* Call with interrupts disabled. */
void delay_us(u32 us)
{
    timer_oneshot_us(us);
    while (!timer_expired())
        wait_for_interrupt();
}
