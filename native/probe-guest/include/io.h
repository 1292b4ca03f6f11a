/* Port I/O, MMIO and CPU-control helpers. */
#pragma once
#include "probe.h"

static inline void outb(u16 port, u8 v)
{
    __asm__ __volatile__("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline u8 inb(u16 port)
{
    u8 v;
    __asm__ __volatile__("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

/* Plain 32-bit movs: the simplest instructions for a VMM to decode on an
 * MMIO exit. */
static inline u32 mmio_read32(u64 addr)
{
    u32 v;
    __asm__ __volatile__("movl (%1), %0" : "=r"(v) : "r"(addr) : "memory");
    return v;
}

static inline void mmio_write32(u64 addr, u32 v)
{
    __asm__ __volatile__("movl %0, (%1)" : : "r"(v), "r"(addr) : "memory");
}

static inline u8 mmio_read8(u64 addr)
{
    u8 v;
    __asm__ __volatile__("movb (%1), %0" : "=q"(v) : "r"(addr) : "memory");
    return v;
}

static inline u16 mmio_read16(u64 addr)
{
    u16 v;
    __asm__ __volatile__("movw (%1), %0" : "=r"(v) : "r"(addr) : "memory");
    return v;
}

static inline u64 rdtsc(void)
{
    u32 lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}

static inline void cpu_relax(void) { __asm__ __volatile__("pause" ::: "memory"); }
static inline void irq_disable(void) { __asm__ __volatile__("cli" ::: "memory"); }

/* sti only takes effect after the next instruction, so an interrupt that
 * became pending after the caller checked its condition still wakes hlt. */
static inline void wait_for_interrupt(void)
{
    serial_flush();   /* output reaches the wire before we sleep */
    __asm__ __volatile__("sti; hlt; cli" ::: "memory");
}

/* Lets interrupts that are already pending be handled (sti takes effect
 * after the nop), so counts they update are current. */
static inline void take_pending_interrupts(void)
{
    __asm__ __volatile__("sti; nop; cli" ::: "memory");
}

static inline u64 rflags(void)
{
    u64 f;
    __asm__ __volatile__("pushfq; popq %0" : "=r"(f));
    return f;
}
