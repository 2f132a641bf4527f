/*
 * test-fd-threads.c - fd and event-notifier handlers driven from other
 * threads: a blocking aio_poll() wakes when another thread makes an fd
 * ready, sets a notifier, registers a handler for an already ready fd, or
 * re-enables external handlers; and a socket ping-pong between the loop
 * and a peer thread.
 *
 * Meson runs this program once per fd monitor (AIOLOOP_FDMON=epoll and
 * AIOLOOP_FDMON=poll). A lost wake-up leaves a loop asleep: the harness's
 * no-progress watchdog fails the case by name. Helper threads act once
 * the loop is seen asleep in the fd monitor (wait_until_polling).
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include "aio-test.h"


typedef struct {
    AioContext *ctx;
    int fd;
    int reads;
    int bytes;
} FdState;

static void consume_read(void *opaque)
{
    FdState *s = opaque;

    s->reads++;
    s->bytes += drain_fd(s->fd);
}

/* A helper thread that waits until the loop sleeps in the fd monitor,
 * sets 'acted', then acts once. */
enum { ACT_WRITE, ACT_NOTIFIER_SET, ACT_REGISTER, ACT_ENABLE_EXTERNAL };

typedef struct {
    AioContext *ctx;
    int action;
    int loop_tid;
    int fd;                 /* ACT_WRITE: write end; ACT_REGISTER: fd */
    FdState *state;         /* ACT_REGISTER */
    EventNotifier *notifier;
    int acted;              /* atomic */
    QemuThread thread;
} Actor;

static void *actor_fn(void *opaque)
{
    Actor *a = opaque;

    wait_until_polling(a->loop_tid);
    qatomic_mb_set(&a->acted, 1);
    switch (a->action) {
    case ACT_WRITE:
        write_byte(a->fd);
        break;
    case ACT_NOTIFIER_SET:
        event_notifier_set(a->notifier);
        break;
    case ACT_REGISTER:
        aio_set_fd_handler(a->ctx, a->fd, false, consume_read, NULL,
                           a->state);
        break;
    case ACT_ENABLE_EXTERNAL:
        aio_enable_external(a->ctx);
        break;
    }
    return NULL;
}

static void actor_start(Actor *a)
{
    qatomic_set(&a->acted, 0);
    a->loop_tid = qemu_get_thread_id();
    start_thread(&a->thread, "actor", actor_fn, a);
}

/* ------------------------------------------------------------------ */

static void test_blocking_poll_wakes_on_fd_from_thread(void)
{
    AioContext *ctx = new_ctx();
    int p[2];
    FdState s;
    Actor a = { .ctx = ctx, .action = ACT_WRITE };
    int i;

    make_pipe(p);
    s = (FdState) { .ctx = ctx, .fd = p[0] };
    a.fd = p[1];
    aio_set_fd_handler(ctx, p[0], false, consume_read, NULL, &s);
    CHECK(!aio_poll(ctx, false));
    for (i = 0; i < 5; i++) {
        actor_start(&a);
        CHECK(aio_poll(ctx, true));
        CHECK(qatomic_mb_read(&a.acted));
        CHECK_EQ(s.reads, i + 1);
        qemu_thread_join(&a.thread);
    }
    CHECK_EQ(s.bytes, 5);
    aio_set_fd_handler(ctx, p[0], false, NULL, NULL, NULL);
    close(p[0]);
    close(p[1]);
    aio_context_unref(ctx);
}

typedef struct {
    EventNotifier e;
    int count;
} NotifierState;

static void notifier_read(EventNotifier *e)
{
    NotifierState *n = container_of(e, NotifierState, e);

    event_notifier_test_and_clear(e);
    n->count++;
}

static void test_blocking_poll_wakes_on_notifier_from_thread(void)
{
    AioContext *ctx = new_ctx();
    NotifierState n = { .count = 0 };
    Actor a = { .ctx = ctx, .action = ACT_NOTIFIER_SET,
                .notifier = &n.e };
    int i;

    REQUIRE(event_notifier_init(&n.e, 0) == 0);
    aio_set_event_notifier(ctx, &n.e, false, notifier_read);
    for (i = 0; i < 5; i++) {
        actor_start(&a);
        CHECK(aio_poll(ctx, true));
        CHECK(qatomic_mb_read(&a.acted));
        CHECK_EQ(n.count, i + 1);
        qemu_thread_join(&a.thread);
    }
    aio_set_event_notifier(ctx, &n.e, false, NULL);
    event_notifier_cleanup(&n.e);
    aio_context_unref(ctx);
}

static void test_handler_registered_from_thread(void)
{
    AioContext *ctx = new_ctx();
    int p[2];
    FdState s;
    Actor a = { .ctx = ctx, .action = ACT_REGISTER };
    int polls = 0;

    /* The fd is ready before the handler exists; the loop is asleep
     * when another thread registers it. */
    make_pipe(p);
    write_byte(p[1]);
    s = (FdState) { .ctx = ctx, .fd = p[0] };
    a.fd = p[0];
    a.state = &s;
    actor_start(&a);
    while (s.reads == 0) {
        aio_poll(ctx, true);
        polls++;
    }
    CHECK(qatomic_mb_read(&a.acted));
    CHECK_EQ(s.reads, 1);
    CHECK_EQ(s.bytes, 1);
    CHECK(polls <= 2);
    qemu_thread_join(&a.thread);
    aio_set_fd_handler(ctx, p[0], false, NULL, NULL, NULL);
    close(p[0]);
    close(p[1]);
    aio_context_unref(ctx);
}

static void test_enable_external_from_thread(void)
{
    AioContext *ctx = new_ctx();
    int p[2];
    FdState s;
    Actor a = { .ctx = ctx, .action = ACT_ENABLE_EXTERNAL };

    /* A disabled external fd is ready: the loop must sleep without
     * running it, and run it once another thread enables externals. */
    make_pipe(p);
    s = (FdState) { .ctx = ctx, .fd = p[0] };
    aio_set_fd_handler(ctx, p[0], true, consume_read, NULL, &s);
    aio_disable_external(ctx);
    write_byte(p[1]);
    CHECK(!aio_poll(ctx, false));
    actor_start(&a);
    while (s.reads == 0) {
        aio_poll(ctx, true);
        if (s.reads == 0) {
            /* Woke without running it: only legitimate after enabling. */
            CHECK(qatomic_mb_read(&a.acted));
        }
    }
    CHECK(qatomic_mb_read(&a.acted));
    CHECK_EQ(s.reads, 1);
    qemu_thread_join(&a.thread);
    aio_set_fd_handler(ctx, p[0], true, NULL, NULL, NULL);
    close(p[0]);
    close(p[1]);
    aio_context_unref(ctx);
}

/* Ping-pong: the peer writes one byte and waits for the echo; the loop's
 * handler echoes. Each round needs one wake-up of each side. */
typedef struct {
    int fd;
    int rounds;             /* until this many, or the time budget */
    int64_t end;
    int done;               /* atomic */
    int failed;             /* atomic */
    QemuThread thread;
} Peer;

static void *peer_fn(void *opaque)
{
    Peer *p = opaque;
    int i;

    for (i = 0; i < p->rounds && (i == 0 || test_stress_more(p->end)); i++) {
        struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
        char c = (char)i;
        char r;

        if (write(p->fd, &c, 1) != 1) {
            qatomic_set(&p->failed, 1);
            break;
        }
        /* No bound: a lost wake-up of the loop is a hang (watchdog). */
        if (poll(&pfd, 1, -1) != 1 || read(p->fd, &r, 1) != 1 || r != c) {
            qatomic_set(&p->failed, 1);
            break;
        }
    }
    p->rounds = i;
    qatomic_mb_set(&p->done, 1);
    /* Unblocks the loop: EOF makes its fd readable. */
    shutdown(p->fd, SHUT_WR);
    return NULL;
}

typedef struct {
    int fd;
    int echoed;
    bool eof;
} Echo;

static void echo_read(void *opaque)
{
    Echo *e = opaque;
    char buf[64];
    ssize_t n = read(e->fd, buf, sizeof(buf));

    if (n == 0) {
        e->eof = true;
        return;
    }
    if (n > 0) {
        e->echoed += (int)n;
        if (write(e->fd, buf, (size_t)n) != n) {
            abort();
        }
    }
}

static void test_socket_ping_pong(void)
{
    AioContext *ctx = new_ctx();
    int sv[2];
    Echo e;
    Peer peer;
    unsigned long long polls = 0;
    int rounds = 20000;

    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    REQUIRE(fcntl(sv[0], F_SETFL, O_NONBLOCK) == 0);
    e = (Echo) { .fd = sv[0] };
    peer = (Peer) { .fd = sv[1], .rounds = rounds, .end = test_stress_end() };
    aio_set_fd_handler(ctx, sv[0], false, echo_read, NULL, &e);
    REQUIRE(qemu_thread_create(&peer.thread, "peer", peer_fn, &peer,
                               QEMU_THREAD_JOINABLE) == 0);
    while (!e.eof) {
        aio_poll(ctx, true);
        polls++;
    }
    qemu_thread_join(&peer.thread);
    printf("#   %d round trips in %llu polls\n", e.echoed, polls);
    CHECK(!qatomic_read(&peer.failed));
    CHECK_EQ(e.echoed, peer.rounds);     /* the rounds it made */
    CHECK(peer.rounds > 0 && peer.rounds <= rounds);
    aio_set_fd_handler(ctx, sv[0], false, NULL, NULL, NULL);
    close(sv[0]);
    close(sv[1]);
    aio_context_unref(ctx);
}

int main(void)
{
    watchdog_install(WATCHDOG_LOST_WAKEUP);
    signal(SIGPIPE, SIG_IGN);

    RUN(test_blocking_poll_wakes_on_fd_from_thread);
    RUN(test_blocking_poll_wakes_on_notifier_from_thread);
    RUN(test_handler_registered_from_thread);
    RUN(test_enable_external_from_thread);
    RUN(test_socket_ping_pong);
    return test_done();
}
