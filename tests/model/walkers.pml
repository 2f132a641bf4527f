/*
 * walkers.pml - Promela model of handler lifetime in src/aio-posix.c:
 * walks of the handler set counted in ctx->walkers (a QemuLockCnt), a
 * writer retiring nodes, the last walker out freeing the deferred ones.
 * Checked with Spin by tests/model/run-spin-walkers (make check, suite
 * 'model').
 *
 * What is modelled (aio-posix.c):
 *
 *   walk_begin()      qemu_lockcnt_inc(&ctx->walkers): count + 1, at once
 *                     if the count is positive or the lock free; waits
 *                     while the count is zero and the lock held.
 *   a walk            loads the list head (the node of the one fd) and
 *                     dereferences it at several later steps: the fd
 *                     monitor's wait (context released, asleep), collect
 *                     (context reacquired), dispatch; a nested aio_poll()
 *                     from a handler walks again (count 2).
 *   walk_end()        load has_deleted; if set, qemu_lockcnt_dec_if_lock
 *                     (count 1 -> 0 and locked in one step; waits if the
 *                     lock is held; count > 1: nothing) and free the
 *                     deferred nodes, one per step, then unlock; else (or
 *                     when not last) qemu_lockcnt_dec.
 *   retire_locked()   a writer (list_lock held: one writer at a time)
 *                     publishes the replacement and unlinks the old node
 *                     (one seq_cst store: the head), then takes the
 *                     walkers' lock, reads the count, defers the node
 *                     (deleted_handlers, has_deleted) or frees it, unlocks.
 *
 * The lockcnt's word is modelled by its API semantics (each call one
 * atomic step, a wait a blocking guard); its futex protocol is tested by
 * tests/compat/test-qemu-sync.c. All accesses are sequentially consistent,
 * as in the C code (the word's RMWs, the head's seq_cst store and loads).
 *
 * Threads: the loop thread (two aio_poll() iterations, the first with a
 * nested one); a second walker (another thread's aio_poll()/aio_pending()
 * on the same context); a writer that replaces the fd's handler twice
 * (nodes 0 -> 1 -> 2), as aio_set_fd_handler() from any thread.
 *
 * Properties: assert(!freed[n]) at every dereference (no use after
 * free); at the end, every retired node is freed or still deferred and
 * the live node is not freed (nothing lost, nothing freed live); no
 * invalid end state (no deadlock between the lock and the count).
 *
 * Variants that must FAIL (-D at spin -a time):
 *   BUG_UNCOUNTED_SLEEP   the walk is not counted while the loop sleeps
 *                         with the context released (the count dropped
 *                         around the wait, as if holding the context were
 *                         what kept nodes alive): a node retired then is
 *                         freed under the sleeper.
 *   BUG_DEC_THEN_FREE     walk_end decrements, then reads the count and
 *                         frees the deferred list if it read zero: two
 *                         steps, so a node deferred for a walker that came
 *                         in between is freed under it.
 *   BUG_SELF_AS_WALKER    the writer takes a count of 1 for itself (a
 *                         handler removing itself is a walker) and frees:
 *                         another thread's walk is on the node.
 *
 * SPDX-License-Identifier: MIT
 */

#define NNODES 3

/* ---- shared state of the C code ---- */
byte head = 0;              /* ctx->handlers / fd_table slot: node id */
bool deferred[NNODES];      /* on ctx->deleted_handlers */
bool has_deleted;
byte count;                 /* ctx->walkers: the count ... */
bool locked;                /* ... and its lock */

/* ---- ghost state ---- */
bool freed[NNODES];
bool retired[NNODES];
bool loop_done, other_done, writer_done;

inline lc_inc()
{
    atomic { (count > 0 || !locked) -> count++ }
}

inline deref(n)
{
    assert(!freed[n])
}

/* One per step: a walker may come in between (it cannot reach them). */
inline free_deferred(i)
{
    i = 0;
    do
    :: i < NNODES ->
        atomic {
            if
            :: deferred[i] -> assert(retired[i]); deferred[i] = 0; freed[i] = 1
            :: else
            fi;
            i++
        }
    :: else -> break
    od;
    has_deleted = 0;
    i = 0
}

inline walk_begin()
{
    lc_inc()
}

inline walk_end(ok, i)
{
#ifdef BUG_DEC_THEN_FREE
    count--;
    if
    :: has_deleted && count == 0 -> free_deferred(i)
    :: else
    fi
#else
    if
    :: has_deleted ->
        atomic {                /* qemu_lockcnt_dec_if_lock */
            if
            :: count == 1 && !locked -> count = 0; locked = 1; ok = 1
            :: count > 1 -> ok = 0
            fi
        };
        if
        :: ok -> free_deferred(i); locked = 0; ok = 0
        :: else -> count--
        fi
    :: else -> count--
    fi
#endif
}

/* One aio_poll() iteration: walk_begin, look up the node, the fd
 * monitor's wait (asleep, context released) and collect, dispatch
 * (optionally a nested aio_poll() from the handler), walk_end. */
inline iteration(nest, n, m, ok, i)
{
    walk_begin();
    n = head;
    deref(n);                                    /* wait: reads it */
#ifdef BUG_UNCOUNTED_SLEEP
    count--;                                     /* asleep, uncounted */
    deref(n);
    lc_inc();
#else
    deref(n);                                    /* asleep */
#endif
    deref(n);                                    /* collect, dispatch */
    if
    :: nest ->                                   /* nested aio_poll() */
        walk_begin();
        m = head;
        deref(m);
        deref(n);                                /* the outer ready list */
        walk_end(ok, i)
    :: else
    fi;
    deref(n);
    walk_end(ok, i);
    n = 0; m = 0
}

active proctype loop_thread()
{
    byte n, m, i;
    bool ok;

    iteration(1, n, m, ok, i);
    iteration(0, n, m, ok, i);
    loop_done = 1
}

active proctype other_walker()
{
    byte n, m, i;
    bool ok;

    iteration(0, n, m, ok, i);
    other_done = 1
}

/* retire_locked() of the node being replaced. */
inline replace(old, new)
{
    atomic { head = new; retired[old] = 1 };     /* publish, unlink */
    atomic { !locked -> locked = 1 };            /* qemu_lockcnt_lock */
    if
#ifdef BUG_SELF_AS_WALKER
    :: count > 1 -> deferred[old] = 1; has_deleted = 1
#else
    :: count > 0 -> deferred[old] = 1; has_deleted = 1
#endif
    :: else -> freed[old] = 1
    fi;
    locked = 0                                   /* qemu_lockcnt_unlock */
}

active proctype writer()
{
    replace(0, 1);
    replace(1, 2);
    writer_done = 1
}

/* Nothing lost, nothing live freed. */
active proctype checker()
{
    atomic {
        loop_done && other_done && writer_done ->
        assert(count == 0 && !locked);
        assert(!freed[head]);
        assert(retired[0] && retired[1] && !retired[2]);
        assert((freed[0] || deferred[0]) && (freed[1] || deferred[1]))
    }
}
