/*
 * test-atomic-queue.c - the list families of <aioloop/queue.h> and the
 * atomics of <aioloop/atomic.h>.
 *
 * Each list family is checked for ordering after inserts at every
 * position, removal at the head, middle and tail, and safe iteration that
 * frees as it goes. The lock-free QSLIST pair is checked under contention:
 * four threads push 100k elements each while the main thread keeps taking
 * the whole list; every element must be seen exactly once.
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop/atomic.h>
#include <aioloop/queue.h>
#include <aioloop/thread.h>

#include "test.h"

typedef struct Item {
    int v;
    QLIST_ENTRY(Item) l;
    QSLIST_ENTRY(Item) s;
    QSIMPLEQ_ENTRY(Item) q;
    QTAILQ_ENTRY(Item) t;
} Item;

typedef QLIST_HEAD(, Item) ItemList;
typedef QSLIST_HEAD(, Item) ItemSList;
typedef QSIMPLEQ_HEAD(, Item) ItemQ;
typedef QTAILQ_HEAD(ItemTailQ, Item) ItemTailQ;

/* Writes the values in list order into out[]; returns how many. */
#define COLLECT(foreach, head, field, out) ({                           \
    Item *c_;                                                           \
    int n_ = 0;                                                         \
    foreach(c_, head, field) {                                          \
        (out)[n_++] = c_->v;                                            \
    }                                                                   \
    n_;                                                                 \
})

static bool same(const int *got, int n, const int *want, int wn)
{
    int i;

    if (n != wn) {
        printf("#   length %d, expected %d\n", n, wn);
        return false;
    }
    for (i = 0; i < n; i++) {
        if (got[i] != want[i]) {
            printf("#   at %d: %d, expected %d\n", i, got[i], want[i]);
            return false;
        }
    }
    return true;
}

static void test_qlist(void)
{
    Item it[5] = { { .v = 0 }, { .v = 1 }, { .v = 2 }, { .v = 3 }, { .v = 4 } };
    ItemList head = QLIST_HEAD_INITIALIZER(head);
    Item *var, *next;
    int out[8], n;

    CHECK(QLIST_EMPTY(&head));
    CHECK(!QLIST_IS_INSERTED(&it[0], l));
    QLIST_INSERT_HEAD(&head, &it[2], l);             /* 2 */
    QLIST_INSERT_HEAD(&head, &it[0], l);             /* 0 2 */
    QLIST_INSERT_AFTER(&it[0], &it[1], l);           /* 0 1 2 */
    QLIST_INSERT_AFTER(&it[2], &it[4], l);           /* 0 1 2 4 */
    QLIST_INSERT_BEFORE(&it[4], &it[3], l);          /* 0 1 2 3 4 */
    n = COLLECT(QLIST_FOREACH, &head, l, out);
    CHECK(same(out, n, (int[]){ 0, 1, 2, 3, 4 }, 5));
    CHECK(QLIST_FIRST(&head) == &it[0]);
    CHECK(QLIST_NEXT(&it[3], l) == &it[4]);
    CHECK(QLIST_NEXT(&it[4], l) == NULL);
    CHECK(QLIST_IS_INSERTED(&it[3], l));

    QLIST_REMOVE(&it[0], l);                         /* head */
    QLIST_REMOVE(&it[2], l);                         /* middle */
    QLIST_REMOVE(&it[4], l);                         /* tail */
    CHECK(!QLIST_IS_INSERTED(&it[2], l));
    n = COLLECT(QLIST_FOREACH, &head, l, out);
    CHECK(same(out, n, (int[]){ 1, 3 }, 2));

    /* SAFE_REMOVE: no-op when not inserted, works twice. */
    QLIST_SAFE_REMOVE(&it[2], l);
    QLIST_SAFE_REMOVE(&it[3], l);
    QLIST_SAFE_REMOVE(&it[3], l);
    n = COLLECT(QLIST_FOREACH, &head, l, out);
    CHECK(same(out, n, (int[]){ 1 }, 1));

    /* Re-insert a removed element, then empty with FOREACH_SAFE. */
    QLIST_INSERT_HEAD(&head, &it[3], l);
    QLIST_INSERT_BEFORE(&it[3], &it[0], l);          /* before the head */
    n = COLLECT(QLIST_FOREACH, &head, l, out);
    CHECK(same(out, n, (int[]){ 0, 3, 1 }, 3));
    n = 0;
    QLIST_FOREACH_SAFE(var, &head, l, next) {
        out[n++] = var->v;
        QLIST_REMOVE(var, l);
    }
    CHECK(same(out, n, (int[]){ 0, 3, 1 }, 3));
    CHECK(QLIST_EMPTY(&head));

    QLIST_INIT(&head);
    CHECK(QLIST_FIRST(&head) == NULL);
}

static void test_qslist(void)
{
    Item it[4] = { { .v = 0 }, { .v = 1 }, { .v = 2 }, { .v = 3 } };
    ItemSList head = QSLIST_HEAD_INITIALIZER(head);
    ItemSList moved;
    Item *var, *next;
    int out[8], n;

    CHECK(QSLIST_EMPTY(&head));
    QSLIST_INSERT_HEAD(&head, &it[3], s);
    QSLIST_INSERT_HEAD(&head, &it[0], s);            /* 0 3 */
    QSLIST_INSERT_AFTER(&it[0], &it[2], s);          /* 0 2 3 */
    QSLIST_INSERT_AFTER(&it[0], &it[1], s);          /* 0 1 2 3 */
    n = COLLECT(QSLIST_FOREACH, &head, s, out);
    CHECK(same(out, n, (int[]){ 0, 1, 2, 3 }, 4));
    CHECK(QSLIST_FIRST(&head) == &it[0]);
    CHECK(QSLIST_NEXT(&it[1], s) == &it[2]);

    QSLIST_REMOVE(&head, &it[2], Item, s);           /* middle */
    QSLIST_REMOVE(&head, &it[3], Item, s);           /* tail */
    QSLIST_REMOVE_HEAD(&head, s);                    /* head */
    n = COLLECT(QSLIST_FOREACH, &head, s, out);
    CHECK(same(out, n, (int[]){ 1 }, 1));
    QSLIST_INSERT_AFTER(&it[1], &it[2], s);
    QSLIST_INSERT_AFTER(&it[2], &it[3], s);
    QSLIST_REMOVE_AFTER(&it[1], s);                  /* drops 2 */
    n = COLLECT(QSLIST_FOREACH, &head, s, out);
    CHECK(same(out, n, (int[]){ 1, 3 }, 2));
    QSLIST_REMOVE(&head, &it[1], Item, s);           /* head via REMOVE */
    n = COLLECT(QSLIST_FOREACH, &head, s, out);
    CHECK(same(out, n, (int[]){ 3 }, 1));

    /* The atomic pair, single-threaded: LIFO order, source emptied. */
    QSLIST_INIT(&head);
    QSLIST_INSERT_HEAD_ATOMIC(&head, &it[0], s);
    QSLIST_INSERT_HEAD_ATOMIC(&head, &it[1], s);
    QSLIST_INSERT_HEAD_ATOMIC(&head, &it[2], s);
    QSLIST_MOVE_ATOMIC(&moved, &head);
    CHECK(QSLIST_EMPTY(&head));
    n = COLLECT(QSLIST_FOREACH, &moved, s, out);
    CHECK(same(out, n, (int[]){ 2, 1, 0 }, 3));

    n = 0;
    QSLIST_FOREACH_SAFE(var, &moved, s, next) {
        out[n++] = var->v;
        var->s.sle_next = (Item *)0x1;  /* poison: the walk must not care */
    }
    CHECK(same(out, n, (int[]){ 2, 1, 0 }, 3));
}

static void test_qsimpleq(void)
{
    Item it[6] = { { .v = 0 }, { .v = 1 }, { .v = 2 },
                   { .v = 3 }, { .v = 4 }, { .v = 5 } };
    ItemQ q = QSIMPLEQ_HEAD_INITIALIZER(q);
    ItemQ q2, rest;
    Item *var, *next;
    int out[8], n;

    CHECK(QSIMPLEQ_EMPTY(&q));
    QSIMPLEQ_INSERT_TAIL(&q, &it[1], q);
    QSIMPLEQ_INSERT_HEAD(&q, &it[0], q);
    QSIMPLEQ_INSERT_TAIL(&q, &it[3], q);
    QSIMPLEQ_INSERT_AFTER(&q, &it[1], &it[2], q);    /* 0 1 2 3 */
    QSIMPLEQ_INSERT_AFTER(&q, &it[3], &it[4], q);    /* after the tail */
    QSIMPLEQ_INSERT_TAIL(&q, &it[5], q);             /* tail pointer ok? */
    n = COLLECT(QSIMPLEQ_FOREACH, &q, q, out);
    CHECK(same(out, n, (int[]){ 0, 1, 2, 3, 4, 5 }, 6));
    CHECK(QSIMPLEQ_FIRST(&q) == &it[0]);
    CHECK(QSIMPLEQ_NEXT(&it[4], q) == &it[5]);

    QSIMPLEQ_REMOVE_HEAD(&q, q);                     /* 1 2 3 4 5 */
    QSIMPLEQ_REMOVE(&q, &it[3], Item, q);            /* 1 2 4 5 */
    QSIMPLEQ_REMOVE(&q, &it[5], Item, q);            /* tail: 1 2 4 */
    QSIMPLEQ_INSERT_TAIL(&q, &it[0], q);             /* 1 2 4 0 */
    n = COLLECT(QSIMPLEQ_FOREACH, &q, q, out);
    CHECK(same(out, n, (int[]){ 1, 2, 4, 0 }, 4));

    /* SPLIT_AFTER then CONCAT back. */
    QSIMPLEQ_SPLIT_AFTER(&q, &it[2], q, &rest);
    n = COLLECT(QSIMPLEQ_FOREACH, &q, q, out);
    CHECK(same(out, n, (int[]){ 1, 2 }, 2));
    n = COLLECT(QSIMPLEQ_FOREACH, &rest, q, out);
    CHECK(same(out, n, (int[]){ 4, 0 }, 2));
    QSIMPLEQ_INSERT_TAIL(&q, &it[3], q);             /* tail updated by split */
    QSIMPLEQ_CONCAT(&q, &rest);
    CHECK(QSIMPLEQ_EMPTY(&rest));
    QSIMPLEQ_INSERT_TAIL(&q, &it[5], q);
    n = COLLECT(QSIMPLEQ_FOREACH, &q, q, out);
    CHECK(same(out, n, (int[]){ 1, 2, 3, 4, 0, 5 }, 6));

    QSIMPLEQ_INIT(&q2);
    QSIMPLEQ_CONCAT(&q, &q2);                        /* empty source */
    QSIMPLEQ_SPLIT_AFTER(&q, &it[5], q, &rest);      /* split at the end */
    CHECK(QSIMPLEQ_EMPTY(&rest));

    n = 0;
    QSIMPLEQ_FOREACH_SAFE(var, &q, q, next) {
        out[n++] = var->v;
        QSIMPLEQ_REMOVE_HEAD(&q, q);
    }
    CHECK(same(out, n, (int[]){ 1, 2, 3, 4, 0, 5 }, 6));
    CHECK(QSIMPLEQ_EMPTY(&q));
    QSIMPLEQ_INSERT_TAIL(&q, &it[2], q);             /* tail reset on empty */
    n = COLLECT(QSIMPLEQ_FOREACH, &q, q, out);
    CHECK(same(out, n, (int[]){ 2 }, 1));
}

static void test_qtailq(void)
{
    Item it[6] = { { .v = 0 }, { .v = 1 }, { .v = 2 },
                   { .v = 3 }, { .v = 4 }, { .v = 5 } };
    ItemTailQ tq = QTAILQ_HEAD_INITIALIZER(tq);
    Item *var, *next;
    int out[8], n;

    CHECK(QTAILQ_EMPTY(&tq));
    CHECK(QTAILQ_LAST(&tq) == NULL);
    CHECK(!QTAILQ_IN_USE(&it[0], t));
    QTAILQ_INSERT_TAIL(&tq, &it[2], t);
    QTAILQ_INSERT_HEAD(&tq, &it[0], t);
    QTAILQ_INSERT_AFTER(&tq, &it[0], &it[1], t);     /* 0 1 2 */
    QTAILQ_INSERT_AFTER(&tq, &it[2], &it[4], t);     /* after the tail */
    QTAILQ_INSERT_BEFORE(&it[4], &it[3], t);         /* 0 1 2 3 4 */
    QTAILQ_INSERT_TAIL(&tq, &it[5], t);
    n = COLLECT(QTAILQ_FOREACH, &tq, t, out);
    CHECK(same(out, n, (int[]){ 0, 1, 2, 3, 4, 5 }, 6));
    n = COLLECT(QTAILQ_FOREACH_REVERSE, &tq, t, out);
    CHECK(same(out, n, (int[]){ 5, 4, 3, 2, 1, 0 }, 6));
    CHECK(QTAILQ_FIRST(&tq) == &it[0]);
    CHECK(QTAILQ_LAST(&tq) == &it[5]);
    CHECK(QTAILQ_NEXT(&it[2], t) == &it[3]);
    CHECK(QTAILQ_PREV(&it[2], t) == &it[1]);
    CHECK(QTAILQ_PREV(&it[0], t) == NULL);
    CHECK(QTAILQ_IN_USE(&it[3], t));

    QTAILQ_REMOVE(&tq, &it[0], t);                   /* head */
    QTAILQ_REMOVE(&tq, &it[3], t);                   /* middle */
    QTAILQ_REMOVE(&tq, &it[5], t);                   /* tail */
    CHECK(!QTAILQ_IN_USE(&it[3], t));
    n = COLLECT(QTAILQ_FOREACH, &tq, t, out);
    CHECK(same(out, n, (int[]){ 1, 2, 4 }, 3));
    n = COLLECT(QTAILQ_FOREACH_REVERSE, &tq, t, out);
    CHECK(same(out, n, (int[]){ 4, 2, 1 }, 3));
    CHECK(QTAILQ_LAST(&tq) == &it[4]);
    QTAILQ_INSERT_BEFORE(&it[1], &it[0], t);         /* new head */
    CHECK(QTAILQ_FIRST(&tq) == &it[0]);
    CHECK(QTAILQ_PREV(&it[1], t) == &it[0]);

    n = 0;
    QTAILQ_FOREACH_SAFE(var, &tq, t, next) {
        out[n++] = var->v;
        QTAILQ_REMOVE(&tq, var, t);
    }
    CHECK(same(out, n, (int[]){ 0, 1, 2, 4 }, 4));
    CHECK(QTAILQ_EMPTY(&tq));
    CHECK(QTAILQ_LAST(&tq) == NULL);

    QTAILQ_INIT(&tq);
    QTAILQ_INSERT_HEAD(&tq, &it[1], t);
    QTAILQ_INSERT_HEAD(&tq, &it[0], t);
    n = 0;
    QTAILQ_FOREACH_REVERSE_SAFE(var, &tq, t, next) {
        out[n++] = var->v;
        QTAILQ_REMOVE(&tq, var, t);
    }
    CHECK(same(out, n, (int[]){ 1, 0 }, 2));
    CHECK(QTAILQ_EMPTY(&tq));
}

/* Freeing while iterating with *_FOREACH_SAFE: run it under ASan. */
static void test_safe_foreach_frees(void)
{
    ItemList l = QLIST_HEAD_INITIALIZER(l);
    ItemTailQ tq = QTAILQ_HEAD_INITIALIZER(tq);
    Item *var, *next;
    int i, seen = 0;

    for (i = 0; i < 10; i++) {
        Item *a = calloc(1, sizeof(*a));
        Item *b = calloc(1, sizeof(*b));

        REQUIRE(a && b);
        a->v = b->v = i;
        QLIST_INSERT_HEAD(&l, a, l);
        QTAILQ_INSERT_TAIL(&tq, b, t);
    }
    QLIST_FOREACH_SAFE(var, &l, l, next) {
        seen++;
        QLIST_REMOVE(var, l);
        free(var);
    }
    QTAILQ_FOREACH_SAFE(var, &tq, t, next) {
        CHECK_EQ(var->v, seen - 10);
        seen++;
        QTAILQ_REMOVE(&tq, var, t);
        free(var);
    }
    CHECK_EQ(seen, 20);
    CHECK(QLIST_EMPTY(&l) && QTAILQ_EMPTY(&tq));
}

/* ------------------------------------------------------------------ */
/* Atomics                                                             */

static void test_atomic_ops(void)
{
    int x = 5;
    unsigned u = 0xf0;
    long l = 10;
    void *p = NULL;
    int dummy;

    CHECK_EQ(qatomic_read(&x), 5);
    qatomic_set(&x, 7);
    CHECK_EQ(qatomic_load_acquire(&x), 7);
    qatomic_store_release(&x, 8);
    CHECK_EQ(qatomic_mb_read(&x), 8);
    qatomic_mb_set(&x, 9);
    CHECK_EQ(x, 9);

    /* cmpxchg returns the old value whether or not it swapped. */
    CHECK_EQ(qatomic_cmpxchg(&x, 9, 20), 9);
    CHECK_EQ(x, 20);
    CHECK_EQ(qatomic_cmpxchg(&x, 9, 30), 20);
    CHECK_EQ(x, 20);
    CHECK(qatomic_cmpxchg(&p, NULL, &dummy) == NULL);
    CHECK(p == &dummy);
    CHECK(qatomic_cmpxchg(&p, NULL, NULL) == &dummy);
    CHECK(qatomic_xchg(&p, NULL) == &dummy);
    CHECK(p == NULL);
    CHECK_EQ(qatomic_xchg(&x, 1), 20);

    /* fetch_* return the old value, *_fetch the new one. */
    CHECK_EQ(qatomic_fetch_add(&l, 5), 10);
    CHECK_EQ(qatomic_fetch_sub(&l, 3), 15);
    CHECK_EQ(l, 12);
    CHECK_EQ(qatomic_fetch_and(&u, 0x3c), 0xf0);
    CHECK_EQ(u, 0x30);
    CHECK_EQ(qatomic_fetch_or(&u, 0x01), 0x30);
    CHECK_EQ(qatomic_fetch_xor(&u, 0x11), 0x31);
    CHECK_EQ(u, 0x20);
    CHECK_EQ(qatomic_fetch_inc(&x), 1);
    CHECK_EQ(qatomic_fetch_dec(&x), 2);
    CHECK_EQ(qatomic_inc_fetch(&x), 2);
    CHECK_EQ(qatomic_dec_fetch(&x), 1);
    CHECK_EQ(qatomic_add_fetch(&x, 4), 5);
    CHECK_EQ(qatomic_sub_fetch(&x, 5), 0);

    qatomic_add(&x, 10);
    qatomic_sub(&x, 3);
    qatomic_inc(&x);
    qatomic_dec(&x);
    qatomic_dec(&x);
    CHECK_EQ(x, 6);
    qatomic_and(&u, 0);
    qatomic_or(&u, 6);
    qatomic_xor(&u, 2);
    CHECK_EQ(u, 4);

    /* The barriers compile and do not disturb values. */
    barrier();
    smp_mb();
    smp_wmb();
    smp_rmb();
    CHECK_EQ(x, 6);
}

/* ------------------------------------------------------------------ */
/* Lock-free QSLIST under contention                                   */

#define PUSH_THREADS 4
#define PUSHES_PER_THREAD 100000

typedef struct PushItem {
    int thread;
    int seq;
    QSLIST_ENTRY(PushItem) next;
} PushItem;

static QSLIST_HEAD(, PushItem) push_list;
static PushItem *push_items;
static int pushers_done;

static void *pusher(void *opaque)
{
    int t = (int)(intptr_t)opaque;
    int i;

    for (i = 0; i < PUSHES_PER_THREAD; i++) {
        PushItem *item = &push_items[t * PUSHES_PER_THREAD + i];

        item->thread = t;
        item->seq = i;
        QSLIST_INSERT_HEAD_ATOMIC(&push_list, item, next);
    }
    qatomic_inc(&pushers_done);
    return NULL;
}

/* Takes the list, checks every element; per thread, seqs appear newest
 * first within one batch and batches come in push order. */
static int drain(int *last_seq, int *bad)
{
    QSLIST_HEAD(, PushItem) batch;
    PushItem *item;
    int count = 0;
    int batch_first[PUSH_THREADS], prev[PUSH_THREADS];
    int t;

    QSLIST_MOVE_ATOMIC(&batch, &push_list);
    for (t = 0; t < PUSH_THREADS; t++) {
        batch_first[t] = -1;
    }
    QSLIST_FOREACH(item, &batch, next) {
        t = item->thread;
        if (t < 0 || t >= PUSH_THREADS) {
            (*bad)++;
            continue;
        }
        if (batch_first[t] == -1) {
            batch_first[t] = item->seq;   /* newest of this batch */
        } else if (item->seq >= prev[t]) {
            (*bad)++;                     /* not newest-first */
        }
        prev[t] = item->seq;
        if (item->seq <= last_seq[t]) {
            (*bad)++;                     /* seen before, or reordered */
        }
        count++;
    }
    for (t = 0; t < PUSH_THREADS; t++) {
        if (batch_first[t] != -1) {
            last_seq[t] = batch_first[t];
        }
    }
    return count;
}

static void test_qslist_atomic_threads(void)
{
    QemuThread th[PUSH_THREADS];
    int last_seq[PUSH_THREADS];
    int total = 0, bad = 0, batches = 0;
    int t;

    push_items = calloc(PUSH_THREADS * PUSHES_PER_THREAD, sizeof(PushItem));
    REQUIRE(push_items);
    QSLIST_INIT(&push_list);
    pushers_done = 0;
    for (t = 0; t < PUSH_THREADS; t++) {
        last_seq[t] = -1;
        CHECK_EQ(qemu_thread_create(&th[t], "pusher", pusher,
                                    (void *)(intptr_t)t,
                                    QEMU_THREAD_JOINABLE), 0);
    }
    while (qatomic_load_acquire(&pushers_done) < PUSH_THREADS) {
        total += drain(last_seq, &bad);
        batches++;
    }
    for (t = 0; t < PUSH_THREADS; t++) {
        qemu_thread_join(&th[t]);
    }
    total += drain(last_seq, &bad);
    CHECK_EQ(total, PUSH_THREADS * PUSHES_PER_THREAD);
    CHECK_EQ(bad, 0);
    for (t = 0; t < PUSH_THREADS; t++) {
        CHECK_EQ(last_seq[t], PUSHES_PER_THREAD - 1);
    }
    printf("# %d batches\n", batches);
    free(push_items);
}

int main(void)
{
    TEST(test_qlist);
    TEST(test_qslist);
    TEST(test_qsimpleq);
    TEST(test_qtailq);
    TEST(test_safe_foreach_frees);
    TEST(test_atomic_ops);
    TEST(test_qslist_atomic_threads);
    return test_done();
}
