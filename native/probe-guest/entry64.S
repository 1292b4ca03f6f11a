/*
 * Linux 64-bit boot protocol entry (e_entry) and the common 64-bit start.
 *
 * The 64-bit protocol guarantees only: long mode, paging on with an identity
 * map covering the kernel, the zero page and the command line, interrupts off,
 * RSI = boot_params. The VMM's GDT, stack and page tables are not ours to
 * keep, so we switch to our own before calling C.
 */
#include "layout.h"

    .section .text.entry, "ax"
    .code64
    .globl linux64_entry
linux64_entry:
    cli
    cld
    movq %rsi, %r15                 /* boot_params, survives the calls */
    leaq bsp_stack_top(%rip), %rsp
    call clear_bss64
    movq %r15, boot_info_ptr(%rip)
    movl $BOOT_LINUX64, boot_entry_kind(%rip)
    lgdt gdt_ptr(%rip)
    leaq pml4(%rip), %rax
    movq %rax, %cr3
    /* A far return is the only way to reload CS in long mode. */
    pushq $SEL_CODE64
    leaq common64(%rip), %rax
    pushq %rax
    lretq

clear_bss64:
    leaq __bss_start(%rip), %rdi
    leaq __bss_end(%rip), %rcx
    subq %rdi, %rcx
    shrq $3, %rcx
    xorl %eax, %eax
    rep stosq
    ret

/* Both boot paths arrive here on our GDT and page tables. */
    .globl common64
common64:
    movl $SEL_DATA, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs
    leaq bsp_stack_top(%rip), %rsp
    movl boot_entry_kind(%rip), %edi
    movq boot_info_ptr(%rip), %rsi
    call kmain
3:  cli
    hlt
    jmp 3b

/* APs land here from the trampoline, already on our GDT and page tables. */
    .globl ap_entry64
ap_entry64:
    movl $SEL_DATA, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs
    movq ap_stack_top(%rip), %rsp
    call ap_main
4:  cli
    hlt
    jmp 4b

    .section .data
    .balign 16
    .globl gdt, gdt_end, gdt_ptr
gdt:
    .quad 0
    /* Accessed bits preset so the CPU never has to write the GDT back. */
    .quad 0x00af9b000000ffff        /* 0x08: 64-bit code */
    .quad 0x00cf93000000ffff        /* 0x10: flat 4 GiB data */
    .quad 0x00cf9b000000ffff        /* 0x18: flat 4 GiB 32-bit code */
gdt_end:
    .if (gdt_end - gdt - 1) != GDT_LIMIT
    .error "GDT_LIMIT out of date"
    .endif
    .balign 8
    .word 0, 0, 0
gdt_ptr:                            /* base at a 4-byte boundary */
    .word gdt_end - gdt - 1
    .quad gdt

    .balign 8
    .globl boot_info_ptr, boot_entry_kind
boot_info_ptr:
    .quad 0
boot_entry_kind:
    .long 0

    /* The identity map, PML4[0] -> PDPT[0..n) -> n page directories of
     * 2 MiB pages, built at link time: filling its 2048 entries at boot
     * took ~3.5 ms of emulated instructions under PVM. Both entries use it. */
    .section .data
    .balign 4096
    .globl pml4, pdpt, pd
pml4:
    .quad pdpt + 3                  /* present | writable */
    .fill 511, 8, 0
pdpt:
    .set gib, 0
    .rept IDENT_MAP_GIB
    .quad pd + gib * 0x1000 + 3
    .set gib, gib + 1
    .endr
    .fill 512 - IDENT_MAP_GIB, 8, 0
pd:
    .set page, 0
    .rept IDENT_MAP_GIB * 512
    .quad page * 0x200000 + 0x83    /* present | writable | 2 MiB page */
    .set page, page + 1
    .endr

    .section .noinit, "aw", @nobits
    .balign 16
bsp_stack:
    .skip BSP_STACK_SIZE
bsp_stack_top:
