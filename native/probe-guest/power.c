/* Power off and reset, in order of preference. */
#include "probe.h"
#include "io.h"

void halt_forever(void)
{
    serial_flush();
    for (;;)
        __asm__ __volatile__("cli; hlt");
}

/* The i8042's "pulse output port" command 0xfe pulls the CPU reset line. */
static void i8042_reset(void)
{
    outb(0x64, 0xfe);
}

/* Last resort: with an empty IDT any exception escalates to a triple fault,
 * which resets the machine (and ends QEMU under -no-reboot). QEMU's microvm
 * has no i8042, so this is how poweroff ends it there. #DE from a division
 * by zero is used because PVM cannot emulate int3/ud2. */
static void triple_fault(void)
{
    static const struct {
        u16 limit;
        u64 base;
    } __attribute__((packed)) null_idt = { 0, 0 };
    __asm__ __volatile__("lidt %0\n\t"
                         "xorl %%ecx, %%ecx\n\t"
                         "divl %%ecx" : : "m"(null_idt) : "eax", "ecx", "edx");
}

void power_off(void)
{
    irq_disable();
    /* Virga's ACPI hardware-reduced sleep control register:
     * SLP_TYP = 5 (S5) in bits 4:2, SLP_EN = bit 5. */
    outb(0x600, 0x34);
    i8042_reset();
    triple_fault();
    halt_forever();
}

/* `crash`: what a guest whose exception handling broke does. */
void power_crash(void)
{
    irq_disable();
    serial_flush();
    triple_fault();
    halt_forever();
}

/* `reboot cf9`: the chipset's reset control register, as Linux's
 * reboot=pci does on a PC (Q35 and PIIX): bit 2 starts the reset, bit 1
 * makes it a hard one. */
void power_reboot_cf9(void)
{
    irq_disable();
    serial_flush();
    outb(0xcf9, 0x06);
    triple_fault();
    halt_forever();
}

void power_reboot(void)
{
    irq_disable();
    i8042_reset();
    triple_fault();
    halt_forever();
}
