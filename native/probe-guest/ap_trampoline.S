/*
 * AP start-up trampoline. The BSP copies [ap_tramp_start, ap_tramp_end) to a
 * free 4 KiB page below 1 MiB and sends SIPI with vector = page >> 12; the
 * AP starts in real mode at CS = page >> 4, IP = 0. The code is position
 * independent: the one absolute linear address it needs (its own 32-bit
 * part) is computed from CS at run time.
 */
#include "layout.h"

    .section .rodata
    .balign 16
    .globl ap_tramp_start, ap_tramp_end
    .code16
ap_tramp_start:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    xorl %ebx, %ebx
    movw %ax, %bx
    shll $4, %ebx                   /* linear base of this copy */
    leal (tramp32 - ap_tramp_start)(%ebx), %eax
    movl %eax, (far_ptr - ap_tramp_start)
    lgdtl (tramp_gdt_ptr - ap_tramp_start)
    movl %cr0, %eax
    orl $1, %eax                    /* PE */
    movl %eax, %cr0
    ljmpl *(far_ptr - ap_tramp_start)

    .code32
tramp32:
    movl $SEL_DATA, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs
    movl $pml4, %eax                /* the BSP's tables: shared identity map */
    movl %eax, %cr3
    movl $CR4_PAE, %eax
    movl %eax, %cr4
    movl $MSR_EFER, %ecx
    rdmsr
    orl $EFER_LME, %eax
    wrmsr
    movl $CR0_LONG, %eax
    movl %eax, %cr0
    ljmp $SEL_CODE64, $ap_entry64

    .balign 8
far_ptr:                            /* m16:32 for the indirect far jump */
    .long 0
    .word SEL_CODE32
    .balign 4
    .word 0
tramp_gdt_ptr:
    .word GDT_LIMIT
    .long gdt
ap_tramp_end:
