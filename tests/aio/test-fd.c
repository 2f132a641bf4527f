/*
 * test-fd.c - file-descriptor and event-notifier handlers on one thread:
 * level-triggered read and write handlers on pipes, socketpairs and
 * eventfds, updates, removal from inside handlers, is_external nesting,
 * a thousand idle fds, regular files (epoll refuses them), and the fd
 * monitor name.
 *
 * Meson runs this program once per fd monitor (AIOLOOP_FDMON=epoll and
 * AIOLOOP_FDMON=poll).
 *
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "aio-test.h"


/* The backend this run asked for ("epoll" when AIOLOOP_FDMON is unset). */
static const char *requested_fdmon(void)
{
    const char *env = getenv("AIOLOOP_FDMON");

    return env && *env ? env : "epoll";
}

static void make_socketpair(int fds[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   fds) < 0) {
        perror("socketpair");
        abort();
    }
}

/* ------------------------------------------------------------------ */
/* A handler state shared by most cases.                               */

typedef struct FdState FdState;
struct FdState {
    AioContext *ctx;
    int fd;
    int reads;              /* io_read calls */
    int writes;             /* io_write calls */
    bool consume;           /* io_read drains the fd */
    bool remove_self;       /* io_read removes its own registration */
    bool removed;           /* the registration was removed */
    int late_calls;         /* calls after removal: must stay 0 */
    FdState *victim;        /* io_read removes this one's registration */
};

static void fd_remove(FdState *s)
{
    aio_set_fd_handler(s->ctx, s->fd, false, NULL, NULL, NULL);
    s->removed = true;
}

static void state_read(void *opaque)
{
    FdState *s = opaque;

    if (s->removed) {
        s->late_calls++;
    }
    s->reads++;
    if (s->consume) {
        drain_fd(s->fd);
    }
    if (s->victim && !s->victim->removed) {
        fd_remove(s->victim);
    }
    if (s->remove_self && !s->removed) {
        fd_remove(s);
    }
}

static void state_write(void *opaque)
{
    FdState *s = opaque;

    if (s->removed) {
        s->late_calls++;
    }
    s->writes++;
}

static void other_read(void *opaque)
{
    FdState *s = opaque;

    /* The "other" handler of an update: counted in writes' place. */
    s->writes += 1000;
}

/* ------------------------------------------------------------------ */

static void test_fdmon_name(void)
{
    AioContext *ctx = new_ctx();
    const char *name = aio_context_fdmon_name(ctx);

    REQUIRE(name != NULL);
    printf("#   requested %s, got %s\n", requested_fdmon(), name);
    CHECK(strcmp(name, requested_fdmon()) == 0);
    aio_context_unref(ctx);
}

static void level_triggered_read(int fds[2])
{
    AioContext *ctx = new_ctx();
    FdState s = { .ctx = ctx, .fd = fds[0] };

    aio_set_fd_handler(ctx, fds[0], false, state_read, NULL, &s);
    CHECK_EQ(s.reads, 0);           /* never inside the registration */
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.reads, 0);

    write_byte(fds[1]);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.reads, 1);
    /* Level-triggered: runs again while data remains. */
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.reads, 2);
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(s.reads, 3);

    /* Consume: no longer ready. */
    s.consume = true;
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.reads, 4);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.reads, 4);

    /* Ready again after another write. */
    write_byte(fds[1]);
    write_byte(fds[1]);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.reads, 5);
    CHECK(!aio_poll(ctx, false));

    /* Removed: data no longer calls it. */
    fd_remove(&s);
    write_byte(fds[1]);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.reads, 5);
    CHECK_EQ(s.late_calls, 0);

    aio_context_unref(ctx);
}

static void test_fd_read_pipe(void)
{
    int fds[2];

    make_pipe(fds);
    level_triggered_read(fds);
    close(fds[0]);
    close(fds[1]);
}

static void test_fd_read_socketpair(void)
{
    int fds[2];

    make_socketpair(fds);
    level_triggered_read(fds);
    close(fds[0]);
    close(fds[1]);
}

static void test_fd_read_eof(void)
{
    AioContext *ctx = new_ctx();
    int fds[2];
    FdState s = { 0 };

    /* A pipe whose writer closed is readable (EOF) until removed. */
    make_pipe(fds);
    s = (FdState) { .ctx = ctx, .fd = fds[0], .consume = true };
    aio_set_fd_handler(ctx, fds[0], false, state_read, NULL, &s);
    close(fds[1]);
    CHECK(aio_poll(ctx, false));
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.reads, 2);
    fd_remove(&s);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.reads, 2);
    close(fds[0]);
    aio_context_unref(ctx);
}

static void test_fd_write_socket(void)
{
    AioContext *ctx = new_ctx();
    int fds[2];
    FdState s;
    char buf[4096];
    int filled = 0;

    make_socketpair(fds);
    s = (FdState) { .ctx = ctx, .fd = fds[0] };
    memset(buf, 'y', sizeof(buf));
    aio_set_fd_handler(ctx, fds[0], false, NULL, state_write, &s);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.writes, 1);
    CHECK(aio_poll(ctx, true));     /* still writable: must not sleep */
    CHECK_EQ(s.writes, 2);
    CHECK_EQ(s.reads, 0);

    /* Full socket: not writable, the handler stops running. */
    while (write(fds[0], buf, sizeof(buf)) > 0) {
        filled++;
    }
    CHECK(filled > 0);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.writes, 2);

    /* Drained by the peer: writable again. */
    drain_fd(fds[1]);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.writes, 3);

    fd_remove(&s);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.writes, 3);
    CHECK_EQ(s.late_calls, 0);
    close(fds[0]);
    close(fds[1]);
    aio_context_unref(ctx);
}

static void test_fd_read_and_write_same_fd(void)
{
    AioContext *ctx = new_ctx();
    int fds[2];
    FdState s;

    make_socketpair(fds);
    s = (FdState) { .ctx = ctx, .fd = fds[0], .consume = true };
    aio_set_fd_handler(ctx, fds[0], false, state_read, state_write, &s);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.reads, 0);
    CHECK_EQ(s.writes, 1);

    write_byte(fds[1]);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.reads, 1);
    CHECK_EQ(s.writes, 2);

    fd_remove(&s);
    write_byte(fds[1]);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.reads, 1);
    CHECK_EQ(s.writes, 2);
    close(fds[0]);
    close(fds[1]);
    aio_context_unref(ctx);
}

static void test_fd_update_replaces(void)
{
    AioContext *ctx = new_ctx();
    int fds[2];
    FdState s;

    make_socketpair(fds);
    s = (FdState) { .ctx = ctx, .fd = fds[0] };
    aio_set_fd_handler(ctx, fds[0], false, state_read, NULL, &s);
    /* Second registration replaces the first: only other_read runs. */
    aio_set_fd_handler(ctx, fds[0], false, other_read, NULL, &s);
    write_byte(fds[1]);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.reads, 0);
    CHECK_EQ(s.writes, 1000);

    /* Update to write-only: the read handler is gone. */
    s.writes = 0;
    aio_set_fd_handler(ctx, fds[0], false, NULL, state_write, &s);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.reads, 0);
    CHECK_EQ(s.writes, 1);

    /* And back to read-only: writability no longer calls anything. */
    s.writes = 0;
    s.consume = true;
    aio_set_fd_handler(ctx, fds[0], false, state_read, NULL, &s);
    CHECK(aio_poll(ctx, false));    /* the byte is still there */
    CHECK_EQ(s.reads, 1);
    CHECK_EQ(s.writes, 0);
    CHECK(!aio_poll(ctx, false));

    /* A new opaque takes effect too. */
    {
        FdState t = { .ctx = ctx, .fd = fds[0], .consume = true };

        aio_set_fd_handler(ctx, fds[0], false, state_read, NULL, &t);
        write_byte(fds[1]);
        CHECK(aio_poll(ctx, false));
        CHECK_EQ(t.reads, 1);
        CHECK_EQ(s.reads, 1);
        fd_remove(&t);
    }
    /* Removing an fd that has no handler is harmless. */
    aio_set_fd_handler(ctx, fds[0], false, NULL, NULL, NULL);
    CHECK(!aio_poll(ctx, false));
    close(fds[0]);
    close(fds[1]);
    aio_context_unref(ctx);
}

static void test_fd_remove_self_in_handler(void)
{
    AioContext *ctx = new_ctx();
    int fds[2];
    FdState s;

    make_socketpair(fds);
    /* Read and write both ready: after the read handler removed the fd,
     * the write handler of the same iteration must not run either. */
    s = (FdState) { .ctx = ctx, .fd = fds[0], .remove_self = true };
    aio_set_fd_handler(ctx, fds[0], false, state_read, state_write, &s);
    write_byte(fds[1]);
    CHECK(aio_poll(ctx, false));
    CHECK(s.removed);
    CHECK_EQ(s.reads, 1);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.reads, 1);
    CHECK_EQ(s.late_calls, 0);
    close(fds[0]);
    close(fds[1]);
    aio_context_unref(ctx);
}

static void test_fd_remove_self_then_close(void)
{
    AioContext *ctx = new_ctx();
    int fds[2];
    FdState s;
    int i;

    /* The usual teardown: remove, close, and reuse the fd number. */
    for (i = 0; i < 20; i++) {
        make_pipe(fds);
        s = (FdState) { .ctx = ctx, .fd = fds[0], .remove_self = true };
        aio_set_fd_handler(ctx, fds[0], false, state_read, NULL, &s);
        write_byte(fds[1]);
        CHECK(aio_poll(ctx, false));
        close(fds[0]);
        close(fds[1]);
        CHECK(!aio_poll(ctx, false));
        CHECK_EQ(s.reads, 1);
        CHECK_EQ(s.late_calls, 0);
    }
    aio_context_unref(ctx);
}

static void test_fd_remove_other_in_handler(void)
{
    AioContext *ctx = new_ctx();
    int a[2], b[2];
    FdState sa, sb;
    int round;

    for (round = 0; round < 10; round++) {
        make_pipe(a);
        make_pipe(b);
        sa = (FdState) { .ctx = ctx, .fd = a[0], .victim = &sb };
        sb = (FdState) { .ctx = ctx, .fd = b[0], .victim = &sa };
        /* Alternate the registration order. */
        if (round % 2) {
            aio_set_fd_handler(ctx, a[0], false, state_read, NULL, &sa);
            aio_set_fd_handler(ctx, b[0], false, state_read, NULL, &sb);
        } else {
            aio_set_fd_handler(ctx, b[0], false, state_read, NULL, &sb);
            aio_set_fd_handler(ctx, a[0], false, state_read, NULL, &sa);
        }
        write_byte(a[1]);
        write_byte(b[1]);
        CHECK(aio_poll(ctx, false));
        /* Both were ready; whichever ran first removed the other. */
        CHECK_EQ(sa.reads + sb.reads, 1);
        CHECK(sa.removed != sb.removed);
        CHECK_EQ(sa.late_calls + sb.late_calls, 0);
        /* The survivor still runs (its byte is still there). */
        CHECK(aio_poll(ctx, false));
        CHECK_EQ(sa.reads + sb.reads, 2);
        CHECK_EQ(sa.late_calls + sb.late_calls, 0);
        if (!sa.removed) {
            fd_remove(&sa);
        }
        if (!sb.removed) {
            fd_remove(&sb);
        }
        CHECK(!aio_poll(ctx, false));
        close(a[0]);
        close(a[1]);
        close(b[0]);
        close(b[1]);
    }
    aio_context_unref(ctx);
}

/* Many fds all ready; each handler removes itself and its successor in
 * a ring. Whatever order the backend reports them in, no handler runs
 * after its removal and all of them are gone after one iteration. */
#define KILLERS 16

static void test_fd_remove_many_others_in_handler(void)
{
    AioContext *ctx = new_ctx();
    static FdState s[KILLERS];
    int fds[KILLERS][2];
    int i, reads = 0, late = 0;

    for (i = 0; i < KILLERS; i++) {
        make_pipe(fds[i]);
        s[i] = (FdState) { .ctx = ctx, .fd = fds[i][0] };
        aio_set_fd_handler(ctx, fds[i][0], false, NULL, NULL, NULL);
    }
    for (i = 0; i < KILLERS; i++) {
        aio_set_fd_handler(ctx, fds[i][0], false, state_read, NULL, &s[i]);
        write_byte(fds[i][1]);
    }
    /* Ring: s[i] removes s[i+1] and itself. */
    for (i = 0; i < KILLERS; i++) {
        s[i].victim = &s[(i + 1) % KILLERS];
        s[i].remove_self = true;
    }
    CHECK(aio_poll(ctx, false));
    for (i = 0; i < KILLERS; i++) {
        reads += s[i].reads;
        late += s[i].late_calls;
    }
    CHECK_EQ(late, 0);
    /* Every handler that ran removed itself and its successor, so at
     * least half of them ran, and every one of them is gone now. */
    CHECK(reads >= KILLERS / 2);
    CHECK(!aio_poll(ctx, false));
    for (i = 0; i < KILLERS; i++) {
        CHECK(s[i].removed);
        CHECK(s[i].reads <= 1);
        close(fds[i][0]);
        close(fds[i][1]);
    }
    aio_context_unref(ctx);
}

static void test_fd_external(void)
{
    AioContext *ctx = new_ctx();
    int ext[2], internal[2];
    FdState se, si;

    make_pipe(ext);
    make_pipe(internal);
    se = (FdState) { .ctx = ctx, .fd = ext[0], .consume = true };
    si = (FdState) { .ctx = ctx, .fd = internal[0], .consume = true };
    aio_set_fd_handler(ctx, ext[0], true, state_read, NULL, &se);
    aio_set_fd_handler(ctx, internal[0], false, state_read, NULL, &si);
    CHECK(!aio_external_disabled(ctx));

    aio_disable_external(ctx);
    aio_disable_external(ctx);
    CHECK(aio_external_disabled(ctx));
    write_byte(ext[1]);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(se.reads, 0);

    /* Non-external handlers still run while external ones are off. */
    write_byte(internal[1]);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(si.reads, 1);
    CHECK_EQ(se.reads, 0);

    aio_enable_external(ctx);
    CHECK(aio_external_disabled(ctx));  /* nested: still disabled */
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(se.reads, 0);

    aio_enable_external(ctx);
    CHECK(!aio_external_disabled(ctx));
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(se.reads, 1);
    CHECK(!aio_poll(ctx, false));

    /* Data that arrived while disabled is seen once enabled again, by a
     * blocking poll too. */
    aio_disable_external(ctx);
    write_byte(ext[1]);
    CHECK(!aio_poll(ctx, false));
    aio_enable_external(ctx);
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(se.reads, 2);

    /* An external handler registered while disabled stays off too. */
    aio_set_fd_handler(ctx, ext[0], false, NULL, NULL, NULL);
    aio_disable_external(ctx);
    aio_set_fd_handler(ctx, ext[0], true, state_read, NULL, &se);
    write_byte(ext[1]);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(se.reads, 2);
    aio_enable_external(ctx);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(se.reads, 3);

    fd_remove(&se);
    fd_remove(&si);
    close(ext[0]);
    close(ext[1]);
    close(internal[0]);
    close(internal[1]);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* Event notifiers                                                     */

typedef struct {
    EventNotifier e;
    int count;
    int cleared;            /* test_and_clear() returned true */
    bool clear;
} NotifierState;

static void notifier_read(EventNotifier *e)
{
    NotifierState *n = container_of(e, NotifierState, e);

    n->count++;
    if (n->clear && event_notifier_test_and_clear(e)) {
        n->cleared++;
    }
}

static void test_event_notifier(void)
{
    AioContext *ctx = new_ctx();
    NotifierState n = { .clear = true };

    REQUIRE(event_notifier_init(&n.e, 0) == 0);
    CHECK(event_notifier_get_fd(&n.e) >= 0);
    aio_set_event_notifier(ctx, &n.e, false, notifier_read);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(n.count, 0);

    CHECK_EQ(event_notifier_set(&n.e), 0);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(n.count, 1);
    CHECK_EQ(n.cleared, 1);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(n.count, 1);

    /* Two sets before the loop runs: one call, one clear. */
    event_notifier_set(&n.e);
    event_notifier_set(&n.e);
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(n.count, 2);
    CHECK_EQ(n.cleared, 2);
    CHECK(!aio_poll(ctx, false));

    /* A handler that does not clear runs again (level-triggered). */
    n.clear = false;
    event_notifier_set(&n.e);
    CHECK(aio_poll(ctx, false));
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(n.count, 4);
    CHECK(event_notifier_test_and_clear(&n.e));
    CHECK(!event_notifier_test_and_clear(&n.e));
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(n.count, 4);

    /* Removed: setting it runs nothing. */
    aio_set_event_notifier(ctx, &n.e, false, NULL);
    event_notifier_set(&n.e);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(n.count, 4);
    event_notifier_cleanup(&n.e);
    aio_context_unref(ctx);
}

static void test_event_notifier_initially_set(void)
{
    AioContext *ctx = new_ctx();
    NotifierState n = { .clear = true };

    REQUIRE(event_notifier_init(&n.e, 1) == 0);
    aio_set_event_notifier(ctx, &n.e, false, notifier_read);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(n.count, 1);
    CHECK_EQ(n.cleared, 1);
    CHECK(!aio_poll(ctx, false));
    aio_set_event_notifier(ctx, &n.e, false, NULL);
    event_notifier_cleanup(&n.e);
    aio_context_unref(ctx);
}

static void test_event_notifier_external(void)
{
    AioContext *ctx = new_ctx();
    NotifierState n = { .clear = true };

    REQUIRE(event_notifier_init(&n.e, 0) == 0);
    aio_set_event_notifier(ctx, &n.e, true, notifier_read);
    aio_disable_external(ctx);
    event_notifier_set(&n.e);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(n.count, 0);
    aio_enable_external(ctx);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(n.count, 1);
    aio_set_event_notifier(ctx, &n.e, true, NULL);
    event_notifier_cleanup(&n.e);
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* Many fds                                                            */

#define MANY 1000

static int many_counts[MANY];

static void many_read(void *opaque)
{
    int *count = opaque;

    (*count)++;
}

static bool raise_fd_limit(rlim_t want)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        return false;
    }
    if (rl.rlim_cur >= want) {
        return true;
    }
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
        return false;
    }
    rl.rlim_cur = want;
    return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

static void test_fd_many(void)
{
    AioContext *ctx;
    static int efd[MANY];
    const int pick[] = { 0, 537, MANY - 1 };
    unsigned p;
    int i;

    if (!raise_fd_limit(MANY + 64)) {
        SKIP_CASE("RLIMIT_NOFILE is below 1064 and cannot be raised");
    }
    ctx = new_ctx();
    memset(many_counts, 0, sizeof(many_counts));
    for (i = 0; i < MANY; i++) {
        efd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        REQUIRE(efd[i] >= 0);
        aio_set_fd_handler(ctx, efd[i], false, many_read, NULL,
                           &many_counts[i]);
    }
    CHECK(!aio_poll(ctx, false));
    for (p = 0; p < ARRAY_SIZE(pick); p++) {
        uint64_t one = 1, val;
        int sum = 0;

        REQUIRE(write(efd[pick[p]], &one, sizeof(one)) == sizeof(one));
        CHECK(aio_poll(ctx, true));
        for (i = 0; i < MANY; i++) {
            sum += many_counts[i];
        }
        CHECK_EQ(many_counts[pick[p]], 1);
        CHECK_EQ(sum, 1);
        REQUIRE(read(efd[pick[p]], &val, sizeof(val)) == sizeof(val));
        many_counts[pick[p]] = 0;
        CHECK(!aio_poll(ctx, false));
    }
    CHECK(strcmp(aio_context_fdmon_name(ctx), requested_fdmon()) == 0);
    for (i = 0; i < MANY; i++) {
        aio_set_fd_handler(ctx, efd[i], false, NULL, NULL, NULL);
        close(efd[i]);
    }
    CHECK(!aio_poll(ctx, false));
    aio_context_unref(ctx);
}

/* ------------------------------------------------------------------ */
/* Regular files: epoll refuses them (EPERM), the context falls back.  */

static int open_temp_file(void)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    int fd;

    snprintf(path, sizeof(path), "%s/aioloop-test-fd-XXXXXX",
             dir && *dir ? dir : "/tmp");
    fd = mkstemp(path);
    if (fd >= 0) {
        unlink(path);
        if (write(fd, "data", 4) != 4) {
            close(fd);
            return -1;
        }
        lseek(fd, 0, SEEK_SET);
    }
    return fd;
}

static void test_fd_regular_file(void)
{
    AioContext *ctx = new_ctx();
    int file = open_temp_file();
    int p[2];
    FdState sf, sp;

    REQUIRE(file >= 0);
    make_pipe(p);
    /* A pipe registered before the fallback must survive it. */
    sp = (FdState) { .ctx = ctx, .fd = p[0], .consume = true };
    aio_set_fd_handler(ctx, p[0], false, state_read, NULL, &sp);
    CHECK(!aio_poll(ctx, false));

    sf = (FdState) { .ctx = ctx, .fd = file };
    aio_set_fd_handler(ctx, file, false, state_read, NULL, &sf);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(sf.reads, 1);
    CHECK(aio_poll(ctx, true));     /* a regular file is always ready */
    CHECK_EQ(sf.reads, 2);
    printf("#   fd monitor after registering a regular file: %s\n",
           aio_context_fdmon_name(ctx));
    CHECK(strcmp(aio_context_fdmon_name(ctx), "poll") == 0);

    /* The pipe still works, with and without the file registered. */
    write_byte(p[1]);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(sp.reads, 1);
    CHECK_EQ(sf.reads, 3);
    fd_remove(&sf);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(sf.reads, 3);
    write_byte(p[1]);
    CHECK(aio_poll(ctx, true));
    CHECK_EQ(sp.reads, 2);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(sf.late_calls, 0);

    fd_remove(&sp);
    close(p[0]);
    close(p[1]);
    close(file);
    aio_context_unref(ctx);
}

static void test_fd_regular_file_write(void)
{
    AioContext *ctx = new_ctx();
    int file = open_temp_file();
    FdState sf;

    REQUIRE(file >= 0);
    sf = (FdState) { .ctx = ctx, .fd = file, .remove_self = false };
    aio_set_fd_handler(ctx, file, false, NULL, state_write, &sf);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(sf.writes, 1);
    CHECK(strcmp(aio_context_fdmon_name(ctx), "poll") == 0);
    fd_remove(&sf);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(sf.writes, 1);
    close(file);
    aio_context_unref(ctx);
}

/* /dev/null is a character device that epoll also refuses. */
static void test_fd_dev_null(void)
{
    AioContext *ctx = new_ctx();
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    FdState s;

    if (fd < 0) {
        aio_context_unref(ctx);
        SKIP_CASE("cannot open /dev/null");
    }
    s = (FdState) { .ctx = ctx, .fd = fd };
    aio_set_fd_handler(ctx, fd, false, state_read, NULL, &s);
    CHECK(aio_poll(ctx, false));
    CHECK_EQ(s.reads, 1);
    fd_remove(&s);
    CHECK(!aio_poll(ctx, false));
    CHECK_EQ(s.reads, 1);
    close(fd);
    aio_context_unref(ctx);
}

int main(void)
{
    watchdog_install(WATCHDOG_HUNG);
    signal(SIGPIPE, SIG_IGN);

    RUN(test_fdmon_name);
    RUN(test_fd_read_pipe);
    RUN(test_fd_read_socketpair);
    RUN(test_fd_read_eof);
    RUN(test_fd_write_socket);
    RUN(test_fd_read_and_write_same_fd);
    RUN(test_fd_update_replaces);
    RUN(test_fd_remove_self_in_handler);
    RUN(test_fd_remove_self_then_close);
    RUN(test_fd_remove_other_in_handler);
    RUN(test_fd_remove_many_others_in_handler);
    RUN(test_fd_external);
    RUN(test_event_notifier);
    RUN(test_event_notifier_initially_set);
    RUN(test_event_notifier_external);
    RUN(test_fd_many);
    RUN(test_fd_regular_file);
    RUN(test_fd_regular_file_write);
    RUN(test_fd_dev_null);
    return test_done();
}
