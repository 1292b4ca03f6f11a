/* Boot sequence of the probe guest; see docs/probe-guest.md for the markers. */
#include "probe.h"
#include "io.h"

void kmain(int entry, u64 info_ptr);

/* A whole page the loader zeroes at every load (.noinit lies past the ELF
 * segment's file size, within its memory size) and this guest never
 * clears: a system_reset that boots it over stale memory shows here. */
static volatile u64 load_marker[512] __attribute__((section(".noinit"), aligned(4096)));

void kmain(int entry, u64 info_ptr)
{
    serial_init();
    if (load_marker[0] != 0)
        kprintf("PROBE stale memory 0x%lx\n", (u64)load_marker);
    load_marker[0] = 1;
    idt_init();
    /* The legacy 8259s would deliver on vectors we never programmed: mask
     * every line; all device interrupts go through the IOAPIC. */
    outb(0x21, 0xff);
    outb(0xa1, 0xff);

    boot_info_parse(entry, info_ptr);
    kprintf("PROBE boot entry=%s\n", entry == BOOT_PVH ? "pvh" : "linux64");
    if (!boot.valid)
        kprintf("PROBE panic no valid %s\n",
                entry == BOOT_PVH ? "hvm_start_info" : "boot_params");
    kprintf("PROBE cmdline %s\n", boot.cmdline);
    for (int i = 0; i < boot.n_e820; i++)
        kprintf("PROBE e820 0x%lx 0x%lx %u\n", boot.e820[i].start,
                boot.e820[i].end, boot.e820[i].type);
    kprintf("PROBE mem usable=%lu\n", boot.mem_usable);

    /* Before smp_boot(): the trampoline page must not overwrite the table. */
    mptable_parse();
    lapic_init();
    ioapic_init();
    smp_boot();

    u32 com1_gsi = mp_isa_irq_to_gsi(4);
    isr_set_com1_gsi(com1_gsi);
    ioapic_route(com1_gsi, (u8)(VEC_GSI_BASE + com1_gsi), lapic_id());
    serial_enable_rx_irq();

    mempool_init();
    virtio_probe_cmdline(boot.cmdline);
    virtio_pci_probe();

    kprintf("PROBE ready\n");
    shell_run();
}
