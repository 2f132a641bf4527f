/*
 * echo-server - a TCP echo server: one thread, one coroutine per client.
 *
 * The listening socket has an fd handler on an AioContext. Each accepted
 * connection gets a coroutine written like blocking code (read, write
 * back, repeat) that gives the thread back to the event loop with
 * yield_until_fd_readable() while its socket has nothing to read.
 *
 * Usage: echo-server [PORT]   (none or 0: the kernel picks a free port)
 * Prints "listening on 127.0.0.1:PORT", serves until SIGTERM or SIGINT,
 * then closes every connection and exits 0.
 * SPDX-License-Identifier: MIT
 */
#include <aioloop.h>
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct Server {
    AioContext *ctx;
    int listen_fd;
    unsigned accepted;              /* connections so far (client ids) */
    bool accept_paused;             /* out of fds: wait for a client to go */
    bool stopping;
    QLIST_HEAD(, Client) clients;   /* connected now */
} Server;

typedef struct Client {
    Server *server;
    int fd;
    unsigned id;
    QLIST_ENTRY(Client) next;
} Client;

static QEMUBH *stop_bh;             /* global: the signal handler needs it */

static void on_accept(void *opaque);

/* Send all of buf, yielding while the socket is full. 0 or -errno. */
static int coroutine_fn send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);  /* EPIPE, no SIGPIPE */

        if (n >= 0) {
            buf += n;
            len -= (size_t)n;
        } else if (errno == EAGAIN) {
            yield_until_fd_writable(fd);
        } else if (errno != EINTR) {
            return -errno;
        }
    }
    return 0;
}

/* The life of one connection. Runs in the loop's thread; every yield
 * returns to aio_poll(), which then serves somebody else. */
static void coroutine_fn client_co(void *opaque)
{
    Client *c = opaque;
    Server *s = c->server;
    char buf[4096];                 /* coroutine stacks are 1 MiB */
    int ret = 0;

    while (ret == 0) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n > 0) {
            ret = send_all(c->fd, buf, (size_t)n);
        } else if (n == 0) {
            break;                  /* the client closed its side */
        } else if (errno == EAGAIN) {
            yield_until_fd_readable(c->fd); /* sleep until there is data */
        } else if (errno != EINTR) {
            ret = -errno;
        }
    }
    printf("client %u gone (%s)\n", c->id, ret ? strerror(-ret) : "closed");
    QLIST_REMOVE(c, next);
    close(c->fd);
    free(c);
    if (s->accept_paused && !s->stopping) { /* an fd is free again */
        s->accept_paused = false;
        aio_set_fd_handler(s->ctx, s->listen_fd, false, on_accept, NULL, s);
    }
}   /* returning ends the coroutine; the library recycles it */

/* fd handler: the listening socket is readable, connections wait. */
static void on_accept(void *opaque)
{
    Server *s = opaque;

    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK);
        if (fd < 0 && (errno == EINTR || errno == ECONNABORTED)) {
            continue;
        } else if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
            /* Handlers are level-triggered: left in place, this one would
             * run again at once. Unregister it until a client leaves. */
            perror("accept4 (paused until a client leaves)");
            s->accept_paused = true;
            aio_set_fd_handler(s->ctx, s->listen_fd, false, NULL, NULL, NULL);
            return;
        } else if (fd < 0) {
            if (errno != EAGAIN) {  /* EAGAIN: nobody else is waiting */
                perror("accept4");
            }
            return;
        }
        Client *c = calloc(1, sizeof(*c));
        if (!c) {
            fprintf(stderr, "out of memory: dropping a connection\n");
            close(fd);
            continue;
        }
        *c = (Client){ .server = s, .fd = fd, .id = ++s->accepted };
        QLIST_INSERT_HEAD(&s->clients, c, next);
        printf("client %u connected\n", c->id);
        /* Runs the coroutine until its first yield, then comes back. */
        qemu_coroutine_enter(qemu_coroutine_create(client_co, c));
    }
}

/* Bottom half scheduled by on_signal(); runs in the loop (twice: no harm). */
static void stop_server(void *opaque)
{
    Server *s = opaque;
    Client *c;

    s->stopping = true;
    printf("stopping\n");
    aio_set_fd_handler(s->ctx, s->listen_fd, false, NULL, NULL, NULL);
    /* Each socket now reads end-of-file (and fails to write), so every
     * coroutine wakes up and ends by itself. */
    QLIST_FOREACH(c, &s->clients, next) {
        shutdown(c->fd, SHUT_RDWR);
    }
}

/* Only async-signal-safe calls here: qemu_bh_schedule() is one. */
static void on_signal(int sig)
{
    qemu_bh_schedule(stop_bh);
}

int main(int argc, char **argv)
{
    Server s = { .listen_fd = -1 };     /* zeroed: no clients yet */
    char *end = NULL;
    long port = argc == 2 ? strtol(argv[1], &end, 10) : 0;
    struct sockaddr_in addr = { .sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t addr_len = sizeof(addr);

    if (argc > 2 || (end && (*end || end == argv[1])) || port < 0 ||
        port > 65535) {
        fprintf(stderr, "usage: %s [PORT]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);   /* a reader sees each line at once */
    /* &error_fatal: on failure, print the reason and exit(1). */
    s.ctx = aio_context_new(&error_fatal);
    s.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s.listen_fd < 0 ||
        bind(s.listen_fd, (struct sockaddr *)&addr, sizeof(addr)) ||
        listen(s.listen_fd, SOMAXCONN) ||
        getsockname(s.listen_fd, (struct sockaddr *)&addr, &addr_len)) {
        perror("listening socket");
        if (s.listen_fd >= 0) {
            close(s.listen_fd);
        }
        aio_context_unref(s.ctx);
        return 1;
    }
    stop_bh = aio_bh_new(s.ctx, stop_server, &s);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    aio_set_fd_handler(s.ctx, s.listen_fd, false, on_accept, NULL, &s);
    printf("listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));

    /* The event loop: aio_poll() sleeps until something is ready and runs
     * it. After a stop, it keeps turning until every client has gone. */
    while (!s.stopping || !QLIST_EMPTY(&s.clients)) {
        aio_poll(s.ctx, true);
    }
    signal(SIGTERM, SIG_IGN);           /* stop_bh is about to go away */
    signal(SIGINT, SIG_IGN);
    qemu_bh_delete(stop_bh);
    aio_context_unref(s.ctx);
    close(s.listen_fd);
    printf("served %u clients\n", s.accepted);
    return 0;
}
