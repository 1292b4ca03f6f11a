/*
 * 256 interrupt stubs, 16 bytes apart (isr_stubs + 16 * vector). Each pushes
 * a dummy error code where the CPU does not push one, then the vector, so
 * isr_common always sees the same frame (struct irq_frame).
 */
    .text
    .code64
    /* 256 stubs of 16 bytes fill one aligned 4 KiB block, so their
     * addresses differ only in the low 16 bits (see idt_init). */
    .balign 4096
    .globl isr_stubs
isr_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    pushq $vec
    .else
    pushq $0
    pushq $vec
    .endif
    jmp isr_common
    .set vec, vec + 1
    .endr

isr_common:
    pushq %rax
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    movq %rsp, %rdi
    cld
    call isr_dispatch
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rax
    addq $16, %rsp                  /* vector + error code */
    iretq
