/*
 * coroutine-asm-aarch64.c - the hand-written context switch for AArch64.
 *
 * A switch saves what AAPCS64 says a callee must preserve - x19-x28, the
 * frame pointer x29, the link register x30 (where to continue), the low
 * 64 bits of v8-v15 (d8-d15) - plus the FPCR, on the current stack,
 * stores the stack pointer, loads the other coroutine's stack pointer and
 * restores the same set from it. Nothing else: no signal mask, no
 * caller-saved registers, no FPSR (cumulative exception flags, which
 * AAPCS64 does not preserve across calls), no x18 (a temporary register
 * on Linux), no TPIDR_EL0 (the thread pointer belongs to the thread, and
 * coroutines move between threads). The action code travels in x0, as
 * the return value of the resumed side's own call to
 * aioloop__asm_switch().
 *
 * The FPCR (rounding mode, flush-to-zero, default NaN, trap enables) is
 * "global" in AAPCS64 terms, changed only by functions such as
 * fesetround(); aioloop makes it per coroutine, as the x86-64 switch does
 * with the MXCSR and x87 control words, so that one coroutine's
 * fesetround() does not leak into the code that entered it. Writing the
 * FPCR can be slow, so it is written only when the two sides differ.
 *
 * Saved frame, 176 bytes from the saved stack pointer up:
 *   0: FPCR   8: (pad)   16: x19 x20 ... x28   96: x29 x30
 *   112: d8 d9 ... d15
 *
 * The switch leaves through "br x30" rather than "ret", for the reason
 * given in coroutine-asm-x86_64.c: "ret" is predicted from a return
 * stack that, in a ping-pong between two stacks, is always wrong, while
 * an indirect branch is predicted from history. With branch target
 * identification in force (-mbranch-protection=bti...) "br" may only
 * land on BTI instructions, which return addresses are not, so those
 * builds use "ret". Pointer authentication needs nothing: every function
 * signs and checks its own return address against its own stack
 * pointer, which the switch restores.
 *
 * A new coroutine's stack is prepared so that the first switch continues
 * into aioloop__co_trampoline with the Coroutine pointer in x19, a zero
 * frame pointer (the end of the frame chain) and a 16-byte aligned stack;
 * it calls aioloop__co_main(), which never returns.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdint.h>

#include "coroutine-int.h"

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#define CO_ASM_EXIT "    ret\n"
#else
#define CO_ASM_EXIT "    br x30\n"
#endif

#ifdef AIOLOOP_CO_ASM_DIRECT
#define CO_ASM_HOOK "    tbnz x0, #4, 5f\n"     /* COROUTINE_HOOK (0x10) */
#else
#define CO_ASM_HOOK ""
#endif

#define CO_FRAME_SIZE 176

void aioloop__co_trampoline(void);

__asm__(
    ".text\n"
    ".p2align 4\n"
    ".globl aioloop__asm_switch\n"
    ".hidden aioloop__asm_switch\n"
    ".type aioloop__asm_switch, %function\n"
    /* x0: save_sp, x1: load_sp, x2: action, x3: release or NULL */
    "aioloop__asm_switch:\n"
    "    .cfi_startproc\n"
    "    sub sp, sp, #176\n"
    "    stp x19, x20, [sp, #16]\n"
    "    stp x21, x22, [sp, #32]\n"
    "    stp x23, x24, [sp, #48]\n"
    "    stp x25, x26, [sp, #64]\n"
    "    stp x27, x28, [sp, #80]\n"
    "    stp x29, x30, [sp, #96]\n"
    "    stp d8, d9, [sp, #112]\n"
    "    stp d10, d11, [sp, #128]\n"
    "    stp d12, d13, [sp, #144]\n"
    "    stp d14, d15, [sp, #160]\n"
    "    mrs x9, fpcr\n"
    "    str x9, [sp]\n"
    "    mov x10, sp\n"
    "    str x10, [x0]\n"
    "    mov sp, x1\n"
    /* Off the old stack: publish that with a release store. */
    "    cbz x3, 4f\n"
    "    stlr wzr, [x3]\n"
    "4:  ldr x10, [sp]\n"
    "    cmp x9, x10\n"
    "    b.ne 1f\n"
    "2:  ldp x19, x20, [sp, #16]\n"
    "    ldp x21, x22, [sp, #32]\n"
    "    ldp x23, x24, [sp, #48]\n"
    "    ldp x25, x26, [sp, #64]\n"
    "    ldp x27, x28, [sp, #80]\n"
    "    ldp x29, x30, [sp, #96]\n"
    "    ldp d8, d9, [sp, #112]\n"
    "    ldp d10, d11, [sp, #128]\n"
    "    ldp d12, d13, [sp, #144]\n"
    "    ldp d14, d15, [sp, #160]\n"
    "    add sp, sp, #176\n"
    "    mov x0, x2\n"
    CO_ASM_HOOK
    CO_ASM_EXIT
    "1:  msr fpcr, x10\n"
    "    b 2b\n"
#ifdef AIOLOOP_CO_ASM_DIRECT
    /* The hook: keep x29/x30 across the call, 16-byte aligned. Returns
     * the action without the flag, in x0. */
    "5:  stp x29, x30, [sp, #-16]!\n"
    "    bl aioloop__co_switch_hook\n"
    "    ldp x29, x30, [sp], #16\n"
    CO_ASM_EXIT
#endif
    "    .cfi_endproc\n"
    ".size aioloop__asm_switch, .-aioloop__asm_switch\n"
    "\n"
    ".p2align 2\n"
    ".globl aioloop__co_trampoline\n"
    ".hidden aioloop__co_trampoline\n"
    ".type aioloop__co_trampoline, %function\n"
    "aioloop__co_trampoline:\n"
    "    .cfi_startproc\n"
    "    .cfi_undefined x30\n"
    "    mov x0, x19\n"
    "    bl aioloop__co_main\n"
    "    brk #1\n"
    "    .cfi_endproc\n"
    ".size aioloop__co_trampoline, .-aioloop__co_trampoline\n"
);

static uint64_t fp_control(void)
{
    uint64_t fpcr;

    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
    return fpcr;
}

void aioloop__co_backend_set_fpenv(Coroutine *co)
{
    *(uint64_t *)co->sp = fp_control();       /* the frame's first slot */
}

CoroutineBackend *aioloop__co_backend_new(Coroutine *co)
{
    uintptr_t top;
    uint64_t *sp;

    if (!co) {
        return NULL;            /* a thread's own stack: nothing to set up */
    }
    /* The frame the first switch restores (see the layout above): all
     * zero but the FPCR (ours), x19 (the trampoline's argument) and x30
     * (where the switch continues). Afterwards sp is top: aligned. */
    top = ((uintptr_t)co->stack + co->stack_size) & ~(uintptr_t)15;
    sp = (uint64_t *)(top - CO_FRAME_SIZE);
    for (unsigned i = 0; i < CO_FRAME_SIZE / 8; i++) {
        sp[i] = 0;
    }
    sp[0] = fp_control();
    sp[2] = (uint64_t)(uintptr_t)co;                        /* x19 */
    sp[13] = (uint64_t)(uintptr_t)aioloop__co_trampoline;   /* x30 */
    co->sp = sp;
    return NULL;                /* all the state is co->sp */
}

void aioloop__co_backend_delete(CoroutineBackend *b)
{
    (void)b;
}
