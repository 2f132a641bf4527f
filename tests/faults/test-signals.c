/*
 * test-signals.c - the library under a continuous signal storm.
 *
 * A SIGUSR1 handler that does nothing but count is installed without
 * SA_RESTART, so every blocking system call a signal lands in returns
 * EINTR. A storm thread sends SIGUSR1 (tgkill) every STORM_US to every
 * registered target: the main thread (which runs the main context's
 * aio_poll), the IOThread, every thread-pool worker that runs a job, and
 * the workload's helper thread. Library threads start with every signal
 * blocked (qemu_thread_create), so each target unblocks SIGUSR1 itself
 * when it first runs workload code (Mixed.thread_hook), and unregisters
 * when it exits.
 *
 * Under the storm: rounds of the mixed workload of workload.h (BHs,
 * timers, pool jobs in two contexts, coroutines moving between the main
 * context and the IOThread, block I/O on every engine the kernel offers,
 * an fd handler); blocking aio_poll() waiting for a timer; IOThreads
 * created and destroyed; flushes through every engine. Checked: every
 * item completes exactly once with its documented result - no call
 * returns EINTR (or any error) to the user, a blocking aio_poll() returns
 * only after progress, timers do not fire early - and the signals did
 * reach every kind of thread (counted per thread kind by the handler).
 *
 * Registered once per fd monitor (epoll_pwait2 and ppoll are both
 * interrupted).
 *
 * SPDX-License-Identifier: MIT
 */
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>

#include "workload.h"

#define STORM_US (UNDER_TSAN ? 500 : 50)
#define ROUNDS (UNDER_TSAN ? 2 : 6)

/* ------------------------------------------------------------------ */
/* Targets and the handler                                             */

enum { KIND_MAIN, KIND_IOTHREAD, KIND_WORKER, KIND_HELPER, KIND_MAX };
static const char *const kind_names[KIND_MAX] = {
    "main", "iothread", "worker", "helper",
};

#define MAX_TARGETS 128

static pid_t targets[MAX_TARGETS];      /* atomic; 0: free slot */
static unsigned long delivered[KIND_MAX];       /* atomic */
static unsigned long threads_of[KIND_MAX];      /* atomic: registered */
static __thread int my_kind = -1;
static __thread int my_slot = -1;
static pthread_key_t unregister_key;

static void on_sigusr1(int sig)
{
    int kind = my_kind;

    (void)sig;
    if (kind >= 0) {
        qatomic_inc(&delivered[kind]);
    }
}

static void unregister_target(void *opaque)
{
    (void)opaque;
    if (my_slot >= 0) {
        qatomic_set(&targets[my_slot], 0);
        my_slot = -1;
    }
}

static int thread_kind(void)
{
    char name[32] = "";

    if (qemu_get_thread_id() == getpid()) {
        return KIND_MAIN;
    }
    pthread_getname_np(pthread_self(), name, sizeof(name));
    if (!strcmp(name, "aio-worker")) {
        return KIND_WORKER;
    }
    if (!strncmp(name, "mixed-io", 8) || !strncmp(name, "sig-io", 6)) {
        return KIND_IOTHREAD;
    }
    return KIND_HELPER;
}

/* Mixed.thread_hook: make the calling thread a target, once. */
static void signal_hook(void)
{
    sigset_t set;
    pid_t tid;

    if (my_kind >= 0) {
        return;
    }
    my_kind = thread_kind();
    tid = (pid_t)qemu_get_thread_id();
    for (int i = 0; i < MAX_TARGETS; i++) {
        if (qatomic_cmpxchg(&targets[i], 0, tid) == 0) {
            my_slot = i;
            break;
        }
    }
    qatomic_inc(&threads_of[my_kind]);
    if (my_kind != KIND_MAIN) {
        pthread_setspecific(unregister_key, (void *)1);
    }
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/* ------------------------------------------------------------------ */
/* The storm                                                           */

typedef struct {
    int stop;                   /* atomic */
    unsigned long sent;
} Storm;

static void *storm_thread(void *opaque)
{
    Storm *s = opaque;
    pid_t pid = getpid();

    while (!qatomic_read(&s->stop)) {
        for (int i = 0; i < MAX_TARGETS; i++) {
            pid_t tid = qatomic_read(&targets[i]);

            if (tid && syscall(SYS_tgkill, pid, tid, SIGUSR1) == 0) {
                s->sent++;
            }
        }
        sleep_us(STORM_US);
    }
    return NULL;
}

static Storm storm;
static QemuThread storm_th;

static void storm_start(void)
{
    storm.stop = 0;
    storm.sent = 0;
    w_start_thread(&storm_th, "storm", storm_thread, &storm);
}

static unsigned long storm_stop(void)
{
    qatomic_set(&storm.stop, 1);
    w_join(&storm_th);
    return storm.sent;
}

static void print_delivered(void)
{
    printf("#   delivered:");
    for (int k = 0; k < KIND_MAX; k++) {
        printf(" %s=%lu (%lu threads)", kind_names[k],
               qatomic_read(&delivered[k]), qatomic_read(&threads_of[k]));
    }
    printf("\n");
}

/* ------------------------------------------------------------------ */
/* Cases                                                               */

static void test_mixed_under_signals(void)
{
    Mixed *m = calloc(1, sizeof(*m));
    unsigned long before[KIND_MAX], sent;
    int bad = 0, eagain = 0, rounds = 0;
    int64_t end = test_stress_end();

    REQUIRE(m);
    m->thread_hook = signal_hook;
    for (int k = 0; k < KIND_MAX; k++) {
        before[k] = qatomic_read(&delivered[k]);
    }
    REQUIRE(mixed_init(m));
    storm_start();
    /* At least ROUNDS rounds, and more while the time budget lasts. */
    for (uint32_t round = 0; !bad && (round < ROUNDS ||
                                      test_stress_more(end));
         round++) {
        bad += mixed_round(m, round);
        eagain += m->eagain;
        rounds++;
    }
    sent = storm_stop();
    printf("#   %d rounds of %d items, %lu signals sent\n", rounds,
           w_total(m), sent);
    print_delivered();
    CHECK_EQ(bad, 0);
    CHECK_EQ(eagain, 0);        /* no fault here: not even -EAGAIN */
    /* The storm reached the loop threads and the workers. */
    CHECK(qatomic_read(&delivered[KIND_MAIN]) > before[KIND_MAIN]);
    CHECK(qatomic_read(&delivered[KIND_IOTHREAD]) > before[KIND_IOTHREAD]);
    CHECK(qatomic_read(&delivered[KIND_WORKER]) > before[KIND_WORKER]);
    mixed_fini(m);
    free(m);
}

/* A blocking aio_poll() waiting 20 ms for a timer returns once, after
 * the deadline, however many signals interrupt its wait. */
static void test_blocking_poll_under_signals(void)
{
    AioContext *ctx = new_ctx();
    int fired = 0, calls = 0;
    QEMUTimer *t = aio_timer_new(ctx, QEMU_CLOCK_REALTIME, SCALE_NS,
                                 count_cb, &fired);
    unsigned long main0;
    int64_t t0, due;

    signal_hook();
    storm_start();
    main0 = qatomic_read(&delivered[KIND_MAIN]);
    for (int i = 0; i < 10; i++) {
        int before = fired;

        t0 = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
        due = t0 + 20 * MS;
        timer_mod_ns(t, due);
        calls++;
        CHECK(aio_poll(ctx, true));
        CHECK_EQ(fired, before + 1);
        CHECK(qemu_clock_get_ns(QEMU_CLOCK_REALTIME) >= due);
    }
    storm_stop();
    printf("#   %d blocking aio_poll() calls, %lu signals to this thread "
           "meanwhile\n", calls,
           qatomic_read(&delivered[KIND_MAIN]) - main0);
    CHECK(qatomic_read(&delivered[KIND_MAIN]) - main0 >= 10);
    timer_free(t);
    aio_context_unref(ctx);
}

static void hook_bh(void *opaque)
{
    (void)opaque;
    signal_hook();
}

static void post_bh(void *opaque)
{
    qemu_sem_post(opaque);
}

/* IOThreads created and destroyed during the storm (their creator waits
 * on a semaphore, their destroyer joins them). */
static void test_iothreads_under_signals(void)
{
    enum { N = UNDER_TSAN ? 5 : 20 };
    sigset_t old;
    QemuSemaphore sem;
    int ok = 0;

    signal_hook();
    qemu_sem_init(&sem, 0);
    storm_start();
    for (int i = 0; i < N; i++) {
        IOThread *it = iothread_create("sig-io", &error_abort);
        AioContext *ctx = iothread_get_aio_context(it);

        aio_bh_schedule_oneshot(ctx, hook_bh, NULL);
        sleep_us(500);          /* asleep in its loop, taking signals */
        aio_bh_schedule_oneshot(ctx, post_bh, &sem);
        qemu_sem_wait(&sem);    /* a lost BH is a hang: the watchdog */
        ok++;
        /* iothread_destroy() joins the thread (see w_join()). */
        w_signals_hold(&old);
        iothread_destroy(it);
        w_signals_release(&old);
    }
    storm_stop();
    CHECK_EQ(ok, N);
    qemu_sem_destroy(&sem);
}

/* Flushes on every engine during the storm: never -EINTR. */
static void test_flush_under_signals(void)
{
    static const AioBlockEngine engines[] = {
        AIO_ENGINE_IO_URING, AIO_ENGINE_LINUX_AIO, AIO_ENGINE_THREADS,
    };
    int tried = 0;

    signal_hook();
    storm_start();
    for (size_t e = 0; e < ARRAY_SIZE(engines); e++) {
        AioBlockBackend *b = aio_block_backend_new(engines[e], NULL);
        AioContext *ctx;
        int fd, completed = 0, bad = 0;
        BlkReq r[20];

        if (!b) {
            continue;
        }
        ctx = new_ctx();
        fd = tmp_file_in(test_dir(), 0);
        REQUIRE(fd >= 0);
        aio_block_backend_attach(b, ctx);
        for (int i = 0; i < 20; i++) {
            blk_req_init(&r[i], &completed, 0, 0);
            r[i].acb = aio_block_submit(b, fd, 0, NULL, QEMU_AIO_FLUSH,
                                        blk_req_cb, &r[i]);
        }
        blk_wait(ctx, &completed, 20);
        for (int i = 0; i < 20; i++) {
            bad += r[i].runs != 1 || r[i].ret != 0;
            blk_req_free(&r[i]);
        }
        CHECK_EQ(bad, 0);
        aio_block_backend_detach(b, ctx);
        aio_block_backend_free(b);
        aio_context_unref(ctx);
        close(fd);
        tried++;
    }
    storm_stop();
    CHECK(tried >= 1);
}

int main(void)
{
    struct sigaction sa;

    /* Printing during the storm goes to this buffer; it is flushed
     * between cases, when no storm runs. */
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    watchdog_install(WATCHDOG_HUNG);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigusr1;
    sa.sa_flags = 0;            /* no SA_RESTART: system calls see EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    pthread_key_create(&unregister_key, unregister_target);

    RUN(test_blocking_poll_under_signals);
    RUN(test_iothreads_under_signals);
    RUN(test_flush_under_signals);
    RUN(test_mixed_under_signals);
    print_delivered();
    return test_done();
}
