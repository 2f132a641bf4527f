/*
 * server.h - the aioloop-nbd server: listening sockets, connections,
 * requests. main.c parses the command line into NbdServerOptions and
 * calls nbd_server_run().
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_NBD_SERVER_H
#define AIOLOOP_NBD_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <aioloop.h>

typedef struct NbdServerOptions {
    const char *file;           /* FILE */
    const char *socket_path;    /* -k: a Unix socket instead of TCP */
    const char *bind_addr;      /* -b (default 127.0.0.1) */
    const char *port;           /* -p (default "10809"; "0": any free) */
    const char *export_name;    /* -x (default "") */
    const char *description;    /* -D */
    const char *pid_file;       /* --pid-file */
    bool read_only;             /* -r */
    bool persistent;            /* -t */
    bool cache_none;            /* --cache=none: O_DIRECT */
    bool discard;               /* --discard=unmap */
    bool fork;                  /* --fork */
    bool print_uri;             /* --print-uri */
    bool verbose;               /* -v */
    bool no_in_place;           /* --in-place=off: every read and write
                                 * through the engine */
    int shared;                 /* -e: connections at once (0: no limit) */
    int iothreads;              /* --iothreads: 0 serves in the main thread */
    int handshake_limit;        /* seconds to finish the handshake, 0: none */
    AioBlockEngine engine;      /* --aio */
} NbdServerOptions;

/*
 * Opens the file, listens, serves until SIGTERM/SIGINT (or, without -t,
 * until the last client leaves), then finishes the requests in flight,
 * flushes the file and returns the exit status (0, or 1 with a message
 * on stderr when the set-up failed).
 */
int nbd_server_run(const NbdServerOptions *opts);

#endif /* AIOLOOP_NBD_SERVER_H */
