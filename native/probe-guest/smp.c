/*
 * AP bring-up: INIT, SIPI, SIPI to each enabled MP-table processor, one at a
 * time, so every AP runs the same trampoline and stack hand-off variables and
 * the "PROBE cpu" lines come out in MP-table order.
 */
#include "probe.h"
#include "io.h"

#define ICR_INIT   0x00004500   /* INIT, level assert */
#define ICR_SIPI   0x00004600   /* start-up; low byte = vector (page number) */
#define ICR_FIXED  0x00004000   /* fixed delivery, level assert */
#define AP_TIMEOUT_US 2000000

extern const char ap_tramp_start[], ap_tramp_end[];

/* Read by ap_entry64 / ap_main; written by the BSP before each SIPI. */
u64 ap_stack_top;
static volatile int ap_index;
static volatile int ap_alive;
static u32 bsp_apic_id;
int cpus_online;

static u8 ap_stacks[MAX_CPUS][AP_STACK_SIZE]
    __attribute__((section(".noinit"), aligned(16)));

/*
 * The trampoline must sit in a 4 KiB page below 1 MiB (SIPI vector =
 * page >> 12) that is plain RAM. The VMM's zero page (0x7000), page tables
 * (0x9000-0xbfff) and the firmware's structures have been copied or are no
 * longer needed, but the MP table (0x9fc00+ / 0xf0000+) is avoided anyway.
 */
static u64 pick_trampoline_page(void)
{
    static const u64 candidates[] = { 0x6000, 0x5000, 0x4000, 0x3000, 0x2000, 0x1000, 0x8000 };
    if (boot.n_e820 == 0)
        return candidates[0];
    for (size_t i = 0; i < ARRAY_SIZE(candidates); i++)
        if (e820_is_ram(candidates[i], candidates[i] + 0x1000))
            return candidates[i];
    return 0;
}

void ap_main(void)
{
    idt_load();
    lapic_enable();   /* needed to send the wake-up IPI */
    kprintf("PROBE cpu %d apic=%u online\n", ap_index, lapic_id());
    ap_alive = 1;
    lapic_send_ipi(bsp_apic_id, ICR_FIXED | VEC_WAKEUP);
    serial_flush();
    for (;;)
        __asm__ __volatile__("cli; hlt");
}

void smp_boot(void)
{
    bsp_apic_id = lapic_id();
    kprintf("PROBE cpu 0 apic=%u online\n", bsp_apic_id);
    cpus_online = 1;

    u64 page = pick_trampoline_page();
    if (mp.found && mp.ncpus > 1 && page) {
        memcpy((void *)page, ap_tramp_start, (size_t)(ap_tramp_end - ap_tramp_start));
        for (int i = 0; i < mp.ncpus && cpus_online < MAX_CPUS; i++) {
            u32 id = mp.cpu_apic[i];
            if (id == bsp_apic_id)
                continue;
            ap_index = cpus_online;
            ap_stack_top = (u64)&ap_stacks[cpus_online][AP_STACK_SIZE];
            ap_alive = 0;
            barrier();
            lapic_send_ipi(id, ICR_INIT);
            delay_us(10000);
            lapic_send_ipi(id, ICR_SIPI | (u32)(page >> 12));
            delay_us(200);
            if (!ap_alive)
                lapic_send_ipi(id, ICR_SIPI | (u32)(page >> 12));
            /* The AP sends VEC_WAKEUP once it has printed, so this sleeps
             * instead of spinning (spinning would steal host CPU time from
             * the AP's vCPU thread). */
            timer_oneshot_us(AP_TIMEOUT_US);
            while (!ap_alive && !timer_expired())
                wait_for_interrupt();
            timer_stop();
            if (ap_alive)
                cpus_online++;
        }
    }
    kprintf("PROBE cpus online=%d\n", cpus_online);
}
