/*
 * PVH entry (x86/HVM direct boot ABI, what QEMU uses for an ELF -kernel):
 * 32-bit protected mode, paging off, flat CS/DS, EBX = hvm_start_info.
 * No stack is promised, so this stub uses none.
 */
#include "layout.h"

    .section .text.entry, "ax"
    .code32
    .globl pvh_entry
pvh_entry:
    cli
    cld
    movl %ebx, %esi
    lgdt gdt_ptr
    ljmp $SEL_CODE32, $1f
1:  movl $SEL_DATA, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs

    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    shrl $2, %ecx
    xorl %eax, %eax
    rep stosl

    movl %esi, boot_info_ptr
    movl $0, boot_info_ptr + 4
    movl $BOOT_PVH, boot_entry_kind

    /* The identity map is built at link time (entry64.S). */
    /* Long mode: PAE + CR3, then EFER.LME, then paging on. */
    movl $pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $CR4_PAE, %eax
    movl %eax, %cr4
    movl $MSR_EFER, %ecx
    rdmsr
    orl $EFER_LME, %eax
    wrmsr
    movl $CR0_LONG, %eax
    movl %eax, %cr0
    ljmp $SEL_CODE64, $common64

/*
 * XEN_ELFNOTE_PHYS32_ENTRY (type 18): 4-byte physical address of pvh_entry.
 * QEMU 7.2 reads this desc as a size_t (8 bytes) for ELF64 and truncates it
 * to 32 bits, so the 4 bytes after it must be readable: they are the header
 * of the GUEST_OS note that follows. Both notes are 4-byte aligned, as the
 * PT_NOTE p_align (4) tells loaders.
 */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                         /* namesz */
    .long 4                         /* descsz */
    .long 18                        /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long pvh_entry

    .long 4
    .long 6
    .long 6                         /* XEN_ELFNOTE_GUEST_OS */
    .asciz "Xen"
    .asciz "probe"
    .balign 4
