/*
 * coroutine-asm-x86_64.c - the hand-written context switch for x86-64.
 *
 * A switch saves exactly what the System V ABI says a callee must
 * preserve - rbx, rbp, r12-r15, the MXCSR control/status word and the x87
 * control word - on the current stack, stores the stack pointer, loads
 * the other coroutine's stack pointer and restores the same set from it.
 * Nothing else: no signal mask (swapcontext's system call), no
 * caller-saved registers (the C compiler already assumes the call
 * clobbers them). The action code travels in rax, as the return value of
 * the resumed side's own call to aioloop__asm_switch().
 *
 * A new coroutine's stack is prepared so that the first switch "returns"
 * into co_trampoline with the Coroutine pointer in r12 and a 16-byte
 * aligned stack, which calls aioloop__co_main() and never returns.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "coroutine-int.h"

void aioloop__co_trampoline(void);

__asm__(
    ".text\n"
    ".globl aioloop__asm_switch\n"
    ".hidden aioloop__asm_switch\n"
    ".type aioloop__asm_switch, @function\n"
    "aioloop__asm_switch:\n"
    "    .cfi_startproc\n"
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    subq $8, %rsp\n"
    "    stmxcsr (%rsp)\n"
    "    fnstcw 4(%rsp)\n"
    /* Keep our control words to compare with the other side's. */
    "    movl (%rsp), %r8d\n"
    "    movzwl 4(%rsp), %r9d\n"
    "    movq %rsp, (%rdi)\n"
    "    movq %rsi, %rsp\n"
    /* ldmxcsr/fldcw stall the pipeline: reload only when the control
     * bits differ (MXCSR's low 6 bits are sticky exception flags). */
    "    xorl (%rsp), %r8d\n"
    "    testl $0xffc0, %r8d\n"
    "    jnz 1f\n"
    "    cmpw 4(%rsp), %r9w\n"
    "    jne 1f\n"
    "2:  addq $8, %rsp\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    movq %rdx, %rax\n"
    "    ret\n"
    "1:  ldmxcsr (%rsp)\n"
    "    fldcw 4(%rsp)\n"
    "    jmp 2b\n"
    "    .cfi_endproc\n"
    ".size aioloop__asm_switch, .-aioloop__asm_switch\n"
    "\n"
    ".globl aioloop__co_trampoline\n"
    ".hidden aioloop__co_trampoline\n"
    ".type aioloop__co_trampoline, @function\n"
    "aioloop__co_trampoline:\n"
    "    .cfi_startproc\n"
    "    .cfi_undefined rip\n"
    "    movq %r12, %rdi\n"
    "    call aioloop__co_main\n"
    "    ud2\n"
    "    .cfi_endproc\n"
    ".size aioloop__co_trampoline, .-aioloop__co_trampoline\n"
);

CoroutineBackend *aioloop__co_backend_new(Coroutine *co)
{
    CoroutineBackend *b = calloc(1, sizeof(*b));
    uintptr_t top;
    uint64_t *sp;

    if (!b) {
        fprintf(stderr, "aioloop: out of memory creating a coroutine\n");
        abort();
    }
    if (!co) {
        return b;               /* a thread's own stack: nothing to set up */
    }
    /* Frame popped by the first switch, from low to high addresses:
     * [mxcsr | x87 cw] r15 r14 r13 r12 rbx rbp return-address. After the
     * ret the stack pointer is top - 16: 16-byte aligned before the
     * trampoline's call, as the ABI wants. */
    top = ((uintptr_t)co->stack + co->stack_size) & ~(uintptr_t)15;
    sp = (uint64_t *)(top - 16 - 8 * 8);
    sp[0] = 0x1f80 | ((uint64_t)0x037f << 32);  /* default MXCSR, x87 CW */
    sp[1] = 0;                                  /* r15 */
    sp[2] = 0;                                  /* r14 */
    sp[3] = 0;                                  /* r13 */
    sp[4] = (uint64_t)(uintptr_t)co;            /* r12: the trampoline's arg */
    sp[5] = 0;                                  /* rbx */
    sp[6] = 0;                                  /* rbp */
    sp[7] = (uint64_t)(uintptr_t)aioloop__co_trampoline;
    b->sp = sp;
    return b;
}

void aioloop__co_backend_delete(CoroutineBackend *b)
{
    free(b);
}

