/* Constants shared between the assembly entry code and C. */
#pragma once

/* GDT selectors (entry64.S builds the table). */
#define SEL_CODE64 0x08
#define SEL_DATA   0x10
#define SEL_CODE32 0x18
#define GDT_LIMIT  (4 * 8 - 1)

/* Boot paths, as reported by "PROBE boot entry=". */
#define BOOT_LINUX64 1
#define BOOT_PVH     2

#define MAX_CPUS       64
#define BSP_STACK_SIZE 16384
#define AP_STACK_SIZE  4096

/* Interrupt vectors. Exceptions use 0..31. */
#define VEC_TIMER    0x20
#define VEC_WAKEUP   0x21   /* AP -> BSP "I am online" IPI */
#define VEC_GSI_BASE 0x30   /* IOAPIC input g is delivered on 0x30 + g */
#define VEC_GSI_LAST 0xef
#define VEC_SPURIOUS 0xff

/* Paging: identity map of the first 4 GiB with 2 MiB pages (LAPIC, IOAPIC and
 * the usual virtio-mmio windows all live below 4 GiB). */
#define IDENT_MAP_GIB 4

/* CR0 for long mode: PG | WP | NE | ET | MP | PE. Written whole so CD/NW
 * left set by a CPU reset (APs come out of INIT with CD=NW=1) are cleared. */
#define CR0_LONG 0x80010033
#define MSR_EFER 0xc0000080
#define EFER_LME 0x100
#define CR4_PAE  0x20
