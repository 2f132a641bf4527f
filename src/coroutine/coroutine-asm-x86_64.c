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
 * Saved frame, from the saved stack pointer up:
 *   [MXCSR | x87 CW | 0]  r15 r14 r13 r12 rbx rbp  return address
 *
 * What makes it fast (bench/bench-coroutine.c measures each point):
 *  - It leaves through "pop; jmp *" instead of "ret". In a ping-pong
 *    every return lands somewhere else than where the matching call on
 *    this stack came from, so the CPU's return-stack buffer mispredicts
 *    every "ret"; an indirect jump is predicted from branch history.
 *    coroutine.c calls the switch as a tail call, so this jump is also
 *    the return of qemu_coroutine_enter()/qemu_coroutine_yield().
 *  - ldmxcsr and fldcw stall the pipeline: they run only when the control
 *    bits of the two sides differ (MXCSR bits 0-5 are sticky exception
 *    flags, not control), which is rare.
 *  - The release store and the post-switch hook (coroutine-int.h) are
 *    done here, on the new stack, so that no C code has to follow the
 *    switch in the common case.
 *
 * A new coroutine's stack is prepared so that the first switch "returns"
 * into aioloop__co_trampoline with the Coroutine pointer in r12 and a
 * 16-byte aligned stack, which calls aioloop__co_main() and never
 * returns.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdint.h>

#include "coroutine-int.h"

#ifdef AIOLOOP_CO_ASM_DIRECT
#define CO_ASM_HOOK \
    "    testb $0x10, %al\n"         /* COROUTINE_HOOK */ \
    "    jnz 5f\n"
#else
#define CO_ASM_HOOK ""
#endif

void aioloop__co_trampoline(void);

__asm__(
    ".text\n"
    ".globl aioloop__asm_switch\n"
    ".hidden aioloop__asm_switch\n"
    ".type aioloop__asm_switch, @function\n"
    /* rdi: save_sp, rsi: load_sp, rdx: action, rcx: release or NULL */
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
    /* Keep our control words to compare with the other side's; read
     * back separately (one 8-byte load of the two smaller fresh stores
     * would defeat store forwarding). */
    "    movl (%rsp), %r8d\n"
    "    movzwl 4(%rsp), %r9d\n"
    "    movq %rsp, (%rdi)\n"
    "    movq %rsi, %rsp\n"
    /* Off the old stack: publish that (x86 stores are release stores). */
    "    testq %rcx, %rcx\n"
    "    jz 4f\n"
    "    movl $0, (%rcx)\n"
    "4:  xorl (%rsp), %r8d\n"
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
    CO_ASM_HOOK
    "3:  popq %rcx\n"
    "    jmpq *%rcx\n"
    "1:  ldmxcsr (%rsp)\n"
    "    fldcw 4(%rsp)\n"
    "    jmp 2b\n"
#ifdef AIOLOOP_CO_ASM_DIRECT
    /* The hook, with the stack aligned as at a call: the return address
     * is on top, so 8 more bytes. Returns the action without the flag. */
    "5:  movq %rax, %rdi\n"
    "    subq $8, %rsp\n"
    "    call aioloop__co_switch_hook\n"
    "    addq $8, %rsp\n"
    "    jmp 3b\n"
#endif
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

/* The calling thread's control words, as the frame's first slot holds
 * them. */
static uint64_t fp_control_words(void)
{
    uint32_t mxcsr;
    uint16_t cw;

    __asm__ __volatile__("stmxcsr %0\n\tfnstcw %1" : "=m"(mxcsr), "=m"(cw));
    return mxcsr | ((uint64_t)cw << 32);
}

void aioloop__co_backend_set_fpenv(Coroutine *co)
{
    *(uint64_t *)co->sp = fp_control_words();   /* the frame's first slot */
}

CoroutineBackend *aioloop__co_backend_new(Coroutine *co)
{
    uintptr_t top;
    uint64_t *sp;

    if (!co) {
        return NULL;            /* a thread's own stack: nothing to set up */
    }
    /* Frame popped by the first switch, from low to high addresses:
     * [mxcsr | x87 cw] r15 r14 r13 r12 rbx rbp return-address. After the
     * jump to the trampoline the stack pointer is top - 16: 16-byte
     * aligned before its call, as the ABI wants. */
    top = ((uintptr_t)co->stack + co->stack_size) & ~(uintptr_t)15;
    sp = (uint64_t *)(top - 16 - 8 * 8);
    sp[0] = fp_control_words();                 /* MXCSR, x87 CW: ours */
    sp[1] = 0;                                  /* r15 */
    sp[2] = 0;                                  /* r14 */
    sp[3] = 0;                                  /* r13 */
    sp[4] = (uint64_t)(uintptr_t)co;            /* r12: the trampoline's arg */
    sp[5] = 0;                                  /* rbx */
    sp[6] = 0;                                  /* rbp */
    sp[7] = (uint64_t)(uintptr_t)aioloop__co_trampoline;
    co->sp = sp;
    return NULL;                /* all the state is co->sp */
}

void aioloop__co_backend_delete(CoroutineBackend *b)
{
    (void)b;
}

