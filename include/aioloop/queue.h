/*
 * aioloop/queue.h - intrusive linked lists, with QEMU's (BSD-derived) names.
 *
 * Design
 * ------
 * An intrusive list keeps its links inside the elements: a struct that
 * wants to be on a list embeds an ENTRY field, and the list head is a small
 * struct holding a pointer to the first element. Inserting or removing
 * never allocates, an element can be on several lists at once (one ENTRY
 * field per list), and removal from a doubly linked list is O(1) given
 * only the element. The event loop relies on all three.
 *
 * Four families, from lightest to most capable:
 *
 *   QSLIST   singly linked, head = one pointer. O(1) insert at the head,
 *            O(n) removal of an arbitrary element. It alone has lock-free
 *            operations: QSLIST_INSERT_HEAD_ATOMIC (any thread, even a
 *            signal handler) and QSLIST_MOVE_ATOMIC (take the whole list),
 *            which together make a multi-producer, single-consumer stack.
 *   QSIMPLEQ singly linked with a tail pointer: O(1) insert at either end,
 *            FIFO order, O(1) concatenation.
 *   QLIST    doubly linked, head = one pointer: O(1) removal of any element.
 *   QTAILQ   doubly linked with a tail: O(1) insert at either end and
 *            removal, forward and backward traversal.
 *
 * Field names follow BSD <sys/queue.h> (lh_first, le_next, ...), so code
 * that peeks at them keeps working. QTAILQ links are built from a common
 * QTailQLink type, which lets QTAILQ_LAST and QTAILQ_PREV work without the
 * head's type name (QEMU's signature for them).
 *
 * Invariants a reader must keep:
 *   - None of these macros lock anything, except the two *_ATOMIC ones,
 *     which are lock-free. A list shared between threads needs a lock
 *     or a protocol of its own (documented where the list is declared).
 *   - FOREACH must not remove the current element; FOREACH_SAFE may
 *     remove (and free) the current element, but not the next one.
 *   - QLIST and QTAILQ entries that are zero-filled count as "not on a
 *     list" (QLIST_IS_INSERTED / QTAILQ_IN_USE are false); REMOVE resets
 *     an entry to that state, so a removed element can be tested and
 *     inserted again.
 *   - Macros may evaluate their arguments more than once: pass plain
 *     variables, not expressions with side effects.
 *
 * These are macros and run in the caller's thread with the caller's
 * synchronisation: every operation is "Any thread" in the sense that it
 * touches nothing global, and only the *_ATOMIC ones are safe against
 * concurrent use of the same list.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_QUEUE_H
#define AIOLOOP_QUEUE_H

#include <stddef.h>
#include <aioloop/atomic.h>

/* ================================================================== */
/* QLIST: doubly linked list with a one-pointer head.                  */
/*                                                                     */
/* le_prev points at the pointer that points at this element (the      */
/* head's lh_first or the previous element's le_next), which is what    */
/* makes removal O(1) without knowing the head.                         */

/*
 * QLIST_HEAD(name, type) - declare the head of a QLIST of
 * struct type elements, as struct name (empty name: an anonymous one).
 */
#define QLIST_HEAD(name, type)                                          \
struct name {                                                           \
    struct type *lh_first;      /* first element, NULL when empty */    \
}

/*
 * QLIST_HEAD_INITIALIZER(head) - static initialiser of the empty
 * list head (the variable being defined, not a pointer to it).
 */
#define QLIST_HEAD_INITIALIZER(head) { NULL }

/*
 * QLIST_ENTRY(type) - the links an element of struct type embeds,
 * as a named field, to be on a QLIST (one field per list).
 */
#define QLIST_ENTRY(type)                                               \
struct {                                                                \
    struct type *le_next;       /* next element, NULL at the end */     \
    struct type **le_prev;      /* where our address is stored */       \
}

/* QLIST_INIT(head) - make *head an empty list. */
#define QLIST_INIT(head) do { (head)->lh_first = NULL; } while (0)

/*
 * QLIST_EMPTY(head) - true when the list has no element.
 * QLIST_FIRST(head) - its first element, NULL when empty.
 * QLIST_NEXT(elm, field) - the element after elm, NULL at the end.
 */
#define QLIST_EMPTY(head)           ((head)->lh_first == NULL)
#define QLIST_FIRST(head)           ((head)->lh_first)
#define QLIST_NEXT(elm, field)      ((elm)->field.le_next)

/* True if elm is on a list (its entry was not zero-filled or removed). */
#define QLIST_IS_INSERTED(elm, field) ((elm)->field.le_prev != NULL)

/* QLIST_INSERT_HEAD(head, elm, field) - insert elm at the front. O(1). */
#define QLIST_INSERT_HEAD(head, elm, field) do {                        \
    (elm)->field.le_next = (head)->lh_first;                            \
    if ((elm)->field.le_next != NULL) {                                 \
        (head)->lh_first->field.le_prev = &(elm)->field.le_next;        \
    }                                                                   \
    (head)->lh_first = (elm);                                           \
    (elm)->field.le_prev = &(head)->lh_first;                           \
} while (0)

/*
 * QLIST_INSERT_AFTER(listelm, elm, field) - insert elm after listelm,
 * which is on a list. O(1).
 */
#define QLIST_INSERT_AFTER(listelm, elm, field) do {                    \
    (elm)->field.le_next = (listelm)->field.le_next;                    \
    if ((elm)->field.le_next != NULL) {                                 \
        (listelm)->field.le_next->field.le_prev = &(elm)->field.le_next;\
    }                                                                   \
    (listelm)->field.le_next = (elm);                                   \
    (elm)->field.le_prev = &(listelm)->field.le_next;                   \
} while (0)

/*
 * QLIST_INSERT_BEFORE(listelm, elm, field) - insert elm before
 * listelm, which is on a list (the head is not needed). O(1).
 */
#define QLIST_INSERT_BEFORE(listelm, elm, field) do {                   \
    (elm)->field.le_prev = (listelm)->field.le_prev;                    \
    (elm)->field.le_next = (listelm);                                   \
    *(listelm)->field.le_prev = (elm);                                  \
    (listelm)->field.le_prev = &(elm)->field.le_next;                   \
} while (0)

/* Unlinks elm, which must be on a list, and marks it not inserted. */
#define QLIST_REMOVE(elm, field) do {                                   \
    if ((elm)->field.le_next != NULL) {                                 \
        (elm)->field.le_next->field.le_prev = (elm)->field.le_prev;     \
    }                                                                   \
    *(elm)->field.le_prev = (elm)->field.le_next;                       \
    (elm)->field.le_next = NULL;                                        \
    (elm)->field.le_prev = NULL;                                        \
} while (0)

/* Like QLIST_REMOVE, but does nothing if elm is not on a list. */
#define QLIST_SAFE_REMOVE(elm, field) do {                              \
    if (QLIST_IS_INSERTED(elm, field)) {                                \
        QLIST_REMOVE(elm, field);                                       \
    }                                                                   \
} while (0)

/*
 * QLIST_FOREACH(var, head, field) - walk the list from the first
 * element, var taking each in turn. The body must not remove var
 * (use QLIST_FOREACH_SAFE).
 */
#define QLIST_FOREACH(var, head, field)                                 \
    for ((var) = (head)->lh_first; (var) != NULL;                       \
         (var) = (var)->field.le_next)

/* The body may remove (and free) var; next_var is scratch. */
#define QLIST_FOREACH_SAFE(var, head, field, next_var)                  \
    for ((var) = (head)->lh_first;                                      \
         (var) != NULL && ((next_var) = (var)->field.le_next, 1);       \
         (var) = (next_var))

/* ================================================================== */
/* QSLIST: singly linked list; the lock-free MPSC stack lives here.    */

/*
 * QSLIST_HEAD(name, type) - declare the head of a QSLIST of
 * struct type elements, as struct name (empty name: an anonymous one).
 */
#define QSLIST_HEAD(name, type)                                         \
struct name {                                                           \
    struct type *slh_first;     /* first element, NULL when empty */    \
}

/*
 * QSLIST_HEAD_INITIALIZER(head) - static initialiser of the empty
 * list head (the variable being defined, not a pointer to it).
 */
#define QSLIST_HEAD_INITIALIZER(head) { NULL }

/*
 * QSLIST_ENTRY(type) - the links an element of struct type embeds,
 * as a named field, to be on a QSLIST (one field per list).
 */
#define QSLIST_ENTRY(type)                                              \
struct {                                                                \
    struct type *sle_next;      /* next element, NULL at the end */     \
}

/* QSLIST_INIT(head) - make *head an empty list. */
#define QSLIST_INIT(head) do { (head)->slh_first = NULL; } while (0)

/*
 * QSLIST_EMPTY(head) - true when the list has no element.
 * QSLIST_FIRST(head) - its first element, NULL when empty.
 * QSLIST_NEXT(elm, field) - the element after elm, NULL at the end.
 */
#define QSLIST_EMPTY(head)          ((head)->slh_first == NULL)
#define QSLIST_FIRST(head)          ((head)->slh_first)
#define QSLIST_NEXT(elm, field)     ((elm)->field.sle_next)

/* QSLIST_INSERT_HEAD(head, elm, field) - insert elm at the front. O(1). */
#define QSLIST_INSERT_HEAD(head, elm, field) do {                       \
    (elm)->field.sle_next = (head)->slh_first;                          \
    (head)->slh_first = (elm);                                          \
} while (0)

/*
 * QSLIST_INSERT_AFTER(slistelm, elm, field) - insert elm after
 * slistelm, which is on a list. O(1).
 */
#define QSLIST_INSERT_AFTER(slistelm, elm, field) do {                  \
    (elm)->field.sle_next = (slistelm)->field.sle_next;                 \
    (slistelm)->field.sle_next = (elm);                                 \
} while (0)

/*
 * QSLIST_REMOVE_HEAD(head, field) - unlink the first element (the
 * list must not be empty). O(1).
 */
#define QSLIST_REMOVE_HEAD(head, field) do {                            \
    (head)->slh_first = (head)->slh_first->field.sle_next;              \
} while (0)

/* Unlinks the element after slistelm, which must exist. */
#define QSLIST_REMOVE_AFTER(slistelm, field) do {                       \
    (slistelm)->field.sle_next =                                        \
        (slistelm)->field.sle_next->field.sle_next;                     \
} while (0)

/* Unlinks elm, which must be on the list: O(n), walks from the head. */
#define QSLIST_REMOVE(head, elm, type, field) do {                      \
    if ((head)->slh_first == (elm)) {                                   \
        QSLIST_REMOVE_HEAD(head, field);                                \
    } else {                                                            \
        struct type *qslist_prev_ = (head)->slh_first;                  \
        while (qslist_prev_->field.sle_next != (elm)) {                 \
            qslist_prev_ = qslist_prev_->field.sle_next;                \
        }                                                               \
        QSLIST_REMOVE_AFTER(qslist_prev_, field);                       \
    }                                                                   \
    (elm)->field.sle_next = NULL;                                       \
} while (0)

/*
 * QSLIST_FOREACH(var, head, field) - walk the list from the first
 * element, var taking each in turn. The body must not remove var
 * (use QSLIST_FOREACH_SAFE).
 */
#define QSLIST_FOREACH(var, head, field)                                \
    for ((var) = (head)->slh_first; (var) != NULL;                      \
         (var) = (var)->field.sle_next)

/*
 * QSLIST_FOREACH_SAFE(var, head, field, next_var) - like
 * QSLIST_FOREACH; the body may remove (and free) var; next_var is scratch.
 */
#define QSLIST_FOREACH_SAFE(var, head, field, next_var)                 \
    for ((var) = (head)->slh_first;                                     \
         (var) != NULL && ((next_var) = (var)->field.sle_next, 1);      \
         (var) = (next_var))

/*
 * QSLIST_INSERT_HEAD_ATOMIC(head, elm, field) - push elm onto head while
 * other threads push too (and one consumer may take the list with
 * QSLIST_MOVE_ATOMIC). A compare-and-swap loop: no lock, no syscall, so it
 * is safe in a signal handler; it retries only when another push or a
 * move won the race, so every attempt that fails means someone else made
 * progress (lock-free). The successful CAS is sequentially consistent: it
 * publishes elm's contents (pairs with the xchg in QSLIST_MOVE_ATOMIC) and
 * orders the push before whatever the caller does next (e.g. reading a
 * "is the consumer asleep" flag).
 *
 * Any thread, async-signal-safe.
 */
#define QSLIST_INSERT_HEAD_ATOMIC(head, elm, field) do {                \
    __typeof__((head)->slh_first) qslist_old_ =                         \
        __atomic_load_n(&(head)->slh_first, __ATOMIC_RELAXED);          \
    do {                                                                \
        (elm)->field.sle_next = qslist_old_;                            \
    } while (!__atomic_compare_exchange_n(&(head)->slh_first,           \
                                          &qslist_old_, (elm), true,    \
                                          __ATOMIC_SEQ_CST,             \
                                          __ATOMIC_RELAXED));           \
} while (0)

/*
 * QSLIST_MOVE_ATOMIC(dest, src) - take every element of src at once,
 * leaving src empty: dest (a list private to the caller) gets them, most
 * recently pushed first. One sequentially consistent exchange; pairs with
 * the CAS of QSLIST_INSERT_HEAD_ATOMIC, so the pushed elements' contents
 * are visible to the caller.
 *
 * Any thread, async-signal-safe.
 */
#define QSLIST_MOVE_ATOMIC(dest, src) do {                              \
    (dest)->slh_first =                                                 \
        __atomic_exchange_n(&(src)->slh_first, NULL, __ATOMIC_SEQ_CST); \
} while (0)

/* ================================================================== */
/* QSIMPLEQ: singly linked list with a tail pointer (a FIFO).          */
/*                                                                     */
/* sqh_last points at the last element's sqe_next, or at sqh_first     */
/* when the queue is empty; appending writes through it.               */

/*
 * QSIMPLEQ_HEAD(name, type) - declare the head of a QSIMPLEQ of
 * struct type elements, as struct name (empty name: an anonymous one).
 */
#define QSIMPLEQ_HEAD(name, type)                                       \
struct name {                                                           \
    struct type *sqh_first;     /* first element, NULL when empty */    \
    struct type **sqh_last;     /* the last element's sqe_next */       \
}

/*
 * QSIMPLEQ_HEAD_INITIALIZER(head) - static initialiser of the empty
 * list head (the variable being defined, not a pointer to it).
 */
#define QSIMPLEQ_HEAD_INITIALIZER(head) { NULL, &(head).sqh_first }

/*
 * QSIMPLEQ_ENTRY(type) - the links an element of struct type embeds,
 * as a named field, to be on a QSIMPLEQ (one field per list).
 */
#define QSIMPLEQ_ENTRY(type)                                            \
struct {                                                                \
    struct type *sqe_next;      /* next element, NULL at the end */     \
}

/* QSIMPLEQ_INIT(head) - make *head an empty list. */
#define QSIMPLEQ_INIT(head) do {                                        \
    (head)->sqh_first = NULL;                                           \
    (head)->sqh_last = &(head)->sqh_first;                              \
} while (0)

/*
 * QSIMPLEQ_EMPTY(head) - true when the list has no element.
 * QSIMPLEQ_FIRST(head) - its first element, NULL when empty.
 * QSIMPLEQ_NEXT(elm, field) - the element after elm, NULL at the end.
 */
#define QSIMPLEQ_EMPTY(head)        ((head)->sqh_first == NULL)
#define QSIMPLEQ_FIRST(head)        ((head)->sqh_first)
#define QSIMPLEQ_NEXT(elm, field)   ((elm)->field.sqe_next)

/* QSIMPLEQ_INSERT_HEAD(head, elm, field) - insert elm at the front. O(1). */
#define QSIMPLEQ_INSERT_HEAD(head, elm, field) do {                     \
    (elm)->field.sqe_next = (head)->sqh_first;                          \
    if ((elm)->field.sqe_next == NULL) {                                \
        (head)->sqh_last = &(elm)->field.sqe_next;                      \
    }                                                                   \
    (head)->sqh_first = (elm);                                          \
} while (0)

/* QSIMPLEQ_INSERT_TAIL(head, elm, field) - append elm. O(1). */
#define QSIMPLEQ_INSERT_TAIL(head, elm, field) do {                     \
    (elm)->field.sqe_next = NULL;                                       \
    *(head)->sqh_last = (elm);                                          \
    (head)->sqh_last = &(elm)->field.sqe_next;                          \
} while (0)

/*
 * QSIMPLEQ_INSERT_AFTER(head, listelm, elm, field) - insert elm after
 * listelm, which is on head. O(1).
 */
#define QSIMPLEQ_INSERT_AFTER(head, listelm, elm, field) do {           \
    (elm)->field.sqe_next = (listelm)->field.sqe_next;                  \
    if ((elm)->field.sqe_next == NULL) {                                \
        (head)->sqh_last = &(elm)->field.sqe_next;                      \
    }                                                                   \
    (listelm)->field.sqe_next = (elm);                                  \
} while (0)

/*
 * QSIMPLEQ_REMOVE_HEAD(head, field) - unlink the first element (the
 * queue must not be empty). O(1).
 */
#define QSIMPLEQ_REMOVE_HEAD(head, field) do {                          \
    (head)->sqh_first = (head)->sqh_first->field.sqe_next;              \
    if ((head)->sqh_first == NULL) {                                    \
        (head)->sqh_last = &(head)->sqh_first;                          \
    }                                                                   \
} while (0)

/* Unlinks elm, which must be on the queue: O(n), walks from the head. */
#define QSIMPLEQ_REMOVE(head, elm, type, field) do {                    \
    if ((head)->sqh_first == (elm)) {                                   \
        QSIMPLEQ_REMOVE_HEAD(head, field);                              \
    } else {                                                            \
        struct type *qsimpleq_prev_ = (head)->sqh_first;                \
        while (qsimpleq_prev_->field.sqe_next != (elm)) {               \
            qsimpleq_prev_ = qsimpleq_prev_->field.sqe_next;            \
        }                                                               \
        qsimpleq_prev_->field.sqe_next = (elm)->field.sqe_next;         \
        if (qsimpleq_prev_->field.sqe_next == NULL) {                   \
            (head)->sqh_last = &qsimpleq_prev_->field.sqe_next;         \
        }                                                               \
    }                                                                   \
    (elm)->field.sqe_next = NULL;                                       \
} while (0)

/*
 * QSIMPLEQ_FOREACH(var, head, field) - walk the list from the first
 * element, var taking each in turn. The body must not remove var
 * (use QSIMPLEQ_FOREACH_SAFE).
 */
#define QSIMPLEQ_FOREACH(var, head, field)                              \
    for ((var) = (head)->sqh_first; (var) != NULL;                      \
         (var) = (var)->field.sqe_next)

/*
 * QSIMPLEQ_FOREACH_SAFE(var, head, field, next_var) - like
 * QSIMPLEQ_FOREACH; the body may remove (and free) var; next_var is
 * scratch.
 */
#define QSIMPLEQ_FOREACH_SAFE(var, head, field, next_var)               \
    for ((var) = (head)->sqh_first;                                     \
         (var) != NULL && ((next_var) = (var)->field.sqe_next, 1);      \
         (var) = (next_var))

/* Appends all of head2 to head1 and leaves head2 empty. O(1). */
#define QSIMPLEQ_CONCAT(head1, head2) do {                              \
    if (!QSIMPLEQ_EMPTY(head2)) {                                       \
        *(head1)->sqh_last = (head2)->sqh_first;                        \
        (head1)->sqh_last = (head2)->sqh_last;                          \
        QSIMPLEQ_INIT(head2);                                           \
    }                                                                   \
} while (0)

/*
 * Moves the elements after elm (which is on head) to the queue removed,
 * whose previous contents are discarded; head ends at elm. O(1).
 */
#define QSIMPLEQ_SPLIT_AFTER(head, elm, field, removed) do {            \
    (removed)->sqh_first = (elm)->field.sqe_next;                       \
    if ((removed)->sqh_first == NULL) {                                 \
        (removed)->sqh_last = &(removed)->sqh_first;                    \
    } else {                                                            \
        (removed)->sqh_last = (head)->sqh_last;                         \
        (elm)->field.sqe_next = NULL;                                   \
        (head)->sqh_last = &(elm)->field.sqe_next;                      \
    }                                                                   \
} while (0)

/* ================================================================== */
/* QTAILQ: doubly linked list with a tail.                             */
/*                                                                     */
/* Every element and the head carry a QTailQLink: ql_next is the next   */
/* element (for the head: the first), ql_prev is the *link* of the      */
/* previous element (for the first element: the head's link; for the    */
/* head: the last element's link, or its own link when empty). The     */
/* typed pointers tqh_first / tqe_next share storage with ql_next, so   */
/* forward walks need no casts. Going back one element means going back */
/* two links and forward one; that is how LAST and PREV find a typed    */
/* element without knowing the head's type name. An element whose      */
/* ql_prev is NULL is on no list.                                      */

/* The link pair every QTAILQ head and element holds (see above). */
typedef struct QTailQLink {
    void *ql_next;              /* the next element (head: the first) */
    struct QTailQLink *ql_prev; /* the previous link (head: the last's) */
} QTailQLink;

/*
 * QTAILQ_HEAD(name, type) - declare the head of a QTAILQ of
 * struct type elements, as union name (empty name: an anonymous one).
 */
#define QTAILQ_HEAD(name, type)                                         \
union name {                                                            \
    struct type *tqh_first;     /* first element, NULL when empty */    \
    QTailQLink tqh_circ;        /* ql_prev: the last element's link */  \
}

/*
 * QTAILQ_HEAD_INITIALIZER(head) - static initialiser of the empty
 * list head (the variable being defined, not a pointer to it).
 */
#define QTAILQ_HEAD_INITIALIZER(head) { .tqh_circ = { NULL, &(head).tqh_circ } }

/*
 * QTAILQ_ENTRY(type) - the links an element of struct type embeds,
 * as a named field, to be on a QTAILQ (one field per list).
 */
#define QTAILQ_ENTRY(type)                                              \
union {                                                                 \
    struct type *tqe_next;      /* next element, NULL at the end */     \
    QTailQLink tqe_circ;        /* ql_prev: the previous one's link */  \
}

/* QTAILQ_INIT(head) - make *head an empty list. */
#define QTAILQ_INIT(head) do {                                          \
    (head)->tqh_first = NULL;                                           \
    (head)->tqh_circ.ql_prev = &(head)->tqh_circ;                       \
} while (0)

/*
 * QTAILQ_EMPTY(head) - true when the list has no element.
 * QTAILQ_FIRST(head) - its first element, NULL when empty.
 * QTAILQ_NEXT(elm, field) - the element after elm, NULL at the end.
 */
#define QTAILQ_EMPTY(head)          ((head)->tqh_first == NULL)
#define QTAILQ_FIRST(head)          ((head)->tqh_first)
#define QTAILQ_NEXT(elm, field)     ((elm)->field.tqe_next)

/* True if elm is on a list (its entry was not zero-filled or removed). */
#define QTAILQ_IN_USE(elm, field)   ((elm)->field.tqe_circ.ql_prev != NULL)

/* The last element, or NULL when empty. */
#define QTAILQ_LAST(head)                                               \
    ((__typeof__((head)->tqh_first))                                    \
     (head)->tqh_circ.ql_prev->ql_prev->ql_next)

/* The element before elm, or NULL when elm is the first. */
#define QTAILQ_PREV(elm, field)                                         \
    ((__typeof__(elm))(elm)->field.tqe_circ.ql_prev->ql_prev->ql_next)

/* QTAILQ_INSERT_HEAD(head, elm, field) - insert elm at the front. O(1). */
#define QTAILQ_INSERT_HEAD(head, elm, field) do {                       \
    (elm)->field.tqe_next = (head)->tqh_first;                          \
    if ((elm)->field.tqe_next != NULL) {                                \
        (head)->tqh_first->field.tqe_circ.ql_prev =                     \
            &(elm)->field.tqe_circ;                                     \
    } else {                                                            \
        (head)->tqh_circ.ql_prev = &(elm)->field.tqe_circ;              \
    }                                                                   \
    (head)->tqh_first = (elm);                                          \
    (elm)->field.tqe_circ.ql_prev = &(head)->tqh_circ;                  \
} while (0)

/* QTAILQ_INSERT_TAIL(head, elm, field) - append elm. O(1). */
#define QTAILQ_INSERT_TAIL(head, elm, field) do {                       \
    (elm)->field.tqe_next = NULL;                                       \
    (elm)->field.tqe_circ.ql_prev = (head)->tqh_circ.ql_prev;           \
    (head)->tqh_circ.ql_prev->ql_next = (elm);                          \
    (head)->tqh_circ.ql_prev = &(elm)->field.tqe_circ;                  \
} while (0)

/*
 * QTAILQ_INSERT_AFTER(head, listelm, elm, field) - insert elm after
 * listelm, which is on head. O(1).
 */
#define QTAILQ_INSERT_AFTER(head, listelm, elm, field) do {             \
    (elm)->field.tqe_next = (listelm)->field.tqe_next;                  \
    if ((elm)->field.tqe_next != NULL) {                                \
        (elm)->field.tqe_next->field.tqe_circ.ql_prev =                 \
            &(elm)->field.tqe_circ;                                     \
    } else {                                                            \
        (head)->tqh_circ.ql_prev = &(elm)->field.tqe_circ;              \
    }                                                                   \
    (listelm)->field.tqe_next = (elm);                                  \
    (elm)->field.tqe_circ.ql_prev = &(listelm)->field.tqe_circ;         \
} while (0)

/*
 * QTAILQ_INSERT_BEFORE(listelm, elm, field) - insert elm before
 * listelm, which is on a list (the head is not needed). O(1).
 */
#define QTAILQ_INSERT_BEFORE(listelm, elm, field) do {                  \
    (elm)->field.tqe_circ.ql_prev = (listelm)->field.tqe_circ.ql_prev;  \
    (elm)->field.tqe_next = (listelm);                                  \
    (listelm)->field.tqe_circ.ql_prev->ql_next = (elm);                 \
    (listelm)->field.tqe_circ.ql_prev = &(elm)->field.tqe_circ;         \
} while (0)

/* Unlinks elm, which must be on head, and marks it not in use. */
#define QTAILQ_REMOVE(head, elm, field) do {                            \
    if ((elm)->field.tqe_next != NULL) {                                \
        (elm)->field.tqe_next->field.tqe_circ.ql_prev =                 \
            (elm)->field.tqe_circ.ql_prev;                              \
    } else {                                                            \
        (head)->tqh_circ.ql_prev = (elm)->field.tqe_circ.ql_prev;       \
    }                                                                   \
    (elm)->field.tqe_circ.ql_prev->ql_next = (elm)->field.tqe_next;     \
    (elm)->field.tqe_next = NULL;                                       \
    (elm)->field.tqe_circ.ql_prev = NULL;                               \
} while (0)

/*
 * QTAILQ_FOREACH(var, head, field) - walk the list from the first
 * element, var taking each in turn. The body must not remove var
 * (use QTAILQ_FOREACH_SAFE).
 */
#define QTAILQ_FOREACH(var, head, field)                                \
    for ((var) = (head)->tqh_first; (var) != NULL;                      \
         (var) = (var)->field.tqe_next)

/*
 * QTAILQ_FOREACH_SAFE(var, head, field, next_var) - like
 * QTAILQ_FOREACH; the body may remove (and free) var; next_var is scratch.
 */
#define QTAILQ_FOREACH_SAFE(var, head, field, next_var)                 \
    for ((var) = (head)->tqh_first;                                     \
         (var) != NULL && ((next_var) = (var)->field.tqe_next, 1);      \
         (var) = (next_var))

/*
 * QTAILQ_FOREACH_REVERSE(var, head, field) - walk the list from the
 * last element back to the first. The body must not remove var.
 */
#define QTAILQ_FOREACH_REVERSE(var, head, field)                        \
    for ((var) = QTAILQ_LAST(head); (var) != NULL;                      \
         (var) = QTAILQ_PREV(var, field))

/*
 * QTAILQ_FOREACH_REVERSE_SAFE(var, head, field, prev_var) - like
 * QTAILQ_FOREACH_REVERSE; the body may remove (and free) var; prev_var
 * is scratch.
 */
#define QTAILQ_FOREACH_REVERSE_SAFE(var, head, field, prev_var)         \
    for ((var) = QTAILQ_LAST(head);                                     \
         (var) != NULL && ((prev_var) = QTAILQ_PREV(var, field), 1);    \
         (var) = (prev_var))

#endif /* AIOLOOP_QUEUE_H */
