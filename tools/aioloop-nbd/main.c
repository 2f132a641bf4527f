/*
 * aioloop-nbd - serve a disk image over NBD, on aioloop.
 *
 *   aioloop-nbd [options] FILE
 *
 * The options are qemu-nbd's where they mean the same (-k, -b, -p, -r,
 * -e, -t, -f raw, -x, -D, --cache, --aio, --discard, --fork,
 * --pid-file, --handshake-limit), plus --iothreads N and nbdkit's
 * --print-uri. main() only parses them; server.c serves.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

static void usage(FILE *f)
{
    fprintf(f,
"Usage: aioloop-nbd [options] FILE\n"
"Serve FILE (a raw image or a block device) over NBD.\n"
"\n"
"  -k, --socket=PATH        listen on a Unix socket instead of TCP\n"
"  -b, --bind=ADDR          TCP address to listen on (default 127.0.0.1)\n"
"  -p, --port=PORT          TCP port (default 10809; 0: any free port)\n"
"  -x, --export-name=NAME   the export's name (default \"\")\n"
"  -D, --description=TEXT   the export's description\n"
"  -r, --read-only          refuse writes\n"
"  -e, --shared=N           serve at most N clients at once (default 1;\n"
"                           0: no limit); others wait to be accepted\n"
"  -t, --persistent         keep serving after the last client leaves\n"
"  -f, --format=raw         the image format (raw only)\n"
"  -n, --nocache            same as --cache=none\n"
"      --cache=MODE         none (O_DIRECT) or writeback (default)\n"
"      --aio=ENGINE         io_uring, native (Linux AIO) or threads\n"
"                           (default: the first the kernel allows)\n"
"      --discard=MODE       ignore (default) or unmap: what TRIM does\n"
"      --iothreads=N        serve connections in N IOThreads (default 0:\n"
"                           in the main thread)\n"
"      --in-place=MODE      auto (default): reads and writes that cannot\n"
"                           wait for a device (a file in tmpfs; cached\n"
"                           data with --aio=threads) skip the engine;\n"
"                           off: everything through the engine\n"
"      --handshake-limit=S  drop clients that have not finished the\n"
"                           handshake after S seconds (default 10; 0: never)\n"
"      --fork               run in the background once listening\n"
"      --pid-file=PATH      write the server's process id to PATH\n"
"      --print-uri          print the NBD URI on stdout once listening\n"
"  -v, --verbose            log connections on stderr\n"
"  -h, --help               this help\n"
"  -V, --version            the version\n");
}

static int parse_int(const char *opt, const char *arg, int min, int max,
                     int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(arg, &end, 10);
    if (errno || end == arg || *end || v < min || v > max) {
        fprintf(stderr, "aioloop-nbd: %s: invalid value '%s' (%d..%d)\n",
                opt, arg, min, max);
        return -1;
    }
    *out = (int)v;
    return 0;
}

enum {
    OPT_CACHE = 256, OPT_AIO, OPT_DISCARD, OPT_IOTHREADS, OPT_HS_LIMIT,
    OPT_FORK, OPT_PID_FILE, OPT_PRINT_URI, OPT_IN_PLACE,
};

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "socket", required_argument, NULL, 'k' },
        { "bind", required_argument, NULL, 'b' },
        { "port", required_argument, NULL, 'p' },
        { "export-name", required_argument, NULL, 'x' },
        { "description", required_argument, NULL, 'D' },
        { "read-only", no_argument, NULL, 'r' },
        { "shared", required_argument, NULL, 'e' },
        { "persistent", no_argument, NULL, 't' },
        { "format", required_argument, NULL, 'f' },
        { "nocache", no_argument, NULL, 'n' },
        { "cache", required_argument, NULL, OPT_CACHE },
        { "aio", required_argument, NULL, OPT_AIO },
        { "discard", required_argument, NULL, OPT_DISCARD },
        { "iothreads", required_argument, NULL, OPT_IOTHREADS },
        { "handshake-limit", required_argument, NULL, OPT_HS_LIMIT },
        { "fork", no_argument, NULL, OPT_FORK },
        { "pid-file", required_argument, NULL, OPT_PID_FILE },
        { "print-uri", no_argument, NULL, OPT_PRINT_URI },
        { "in-place", required_argument, NULL, OPT_IN_PLACE },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    NbdServerOptions o = {
        .bind_addr = "127.0.0.1",
        .port = "10809",
        .export_name = "",
        .shared = 1,
        .handshake_limit = 10,
        .engine = AIO_ENGINE_AUTO,
    };
    bool port_given = false, bind_given = false;
    int c, v;

    while ((c = getopt_long(argc, argv, "k:b:p:x:D:re:tf:nvhV", longopts,
                            NULL)) != -1) {
        switch (c) {
        case 'k':
            o.socket_path = optarg;
            break;
        case 'b':
            o.bind_addr = optarg;
            bind_given = true;
            break;
        case 'p':
            if (parse_int("--port", optarg, 0, 65535, &v) < 0) {
                return 2;
            }
            o.port = optarg;
            port_given = true;
            break;
        case 'x':
            if (strlen(optarg) > 4096) {
                fprintf(stderr, "aioloop-nbd: export name over 4096 bytes\n");
                return 2;
            }
            o.export_name = optarg;
            break;
        case 'D':
            o.description = optarg;
            break;
        case 'r':
            o.read_only = true;
            break;
        case 'e':
            if (parse_int("--shared", optarg, 0, INT_MAX, &o.shared) < 0) {
                return 2;
            }
            break;
        case 't':
            o.persistent = true;
            break;
        case 'f':
            if (strcmp(optarg, "raw") != 0) {
                fprintf(stderr, "aioloop-nbd: --format=%s: only raw images "
                        "are served\n", optarg);
                return 2;
            }
            break;
        case 'n':
            o.cache_none = true;
            break;
        case OPT_CACHE:
            if (strcmp(optarg, "none") == 0) {
                o.cache_none = true;
            } else if (strcmp(optarg, "writeback") == 0) {
                o.cache_none = false;
            } else {
                fprintf(stderr, "aioloop-nbd: --cache=%s: use none or "
                        "writeback\n", optarg);
                return 2;
            }
            break;
        case OPT_AIO:
            v = aio_block_engine_parse(optarg);
            if (v < 0) {
                fprintf(stderr, "aioloop-nbd: --aio=%s: use io_uring, native "
                        "or threads\n", optarg);
                return 2;
            }
            o.engine = (AioBlockEngine)v;
            break;
        case OPT_DISCARD:
            if (strcmp(optarg, "unmap") == 0 || strcmp(optarg, "on") == 0) {
                o.discard = true;
            } else if (strcmp(optarg, "ignore") == 0 ||
                       strcmp(optarg, "off") == 0) {
                o.discard = false;
            } else {
                fprintf(stderr, "aioloop-nbd: --discard=%s: use ignore or "
                        "unmap\n", optarg);
                return 2;
            }
            break;
        case OPT_IOTHREADS:
            if (parse_int("--iothreads", optarg, 0, 64, &o.iothreads) < 0) {
                return 2;
            }
            break;
        case OPT_HS_LIMIT:
            if (parse_int("--handshake-limit", optarg, 0, 86400,
                          &o.handshake_limit) < 0) {
                return 2;
            }
            break;
        case OPT_FORK:
            o.fork = true;
            break;
        case OPT_PID_FILE:
            o.pid_file = optarg;
            break;
        case OPT_PRINT_URI:
            o.print_uri = true;
            break;
        case OPT_IN_PLACE:
            if (strcmp(optarg, "auto") == 0) {
                o.no_in_place = false;
            } else if (strcmp(optarg, "off") == 0) {
                o.no_in_place = true;
            } else {
                fprintf(stderr, "aioloop-nbd: --in-place=%s: use auto or "
                        "off\n", optarg);
                return 2;
            }
            break;
        case 'v':
            o.verbose = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("aioloop-nbd %s\n", AIOLOOP_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "aioloop-nbd: %s\n", optind >= argc ?
                "no FILE given" : "one FILE only");
        usage(stderr);
        return 2;
    }
    if (o.socket_path && (port_given || bind_given)) {
        fprintf(stderr, "aioloop-nbd: --socket excludes --bind and --port\n");
        return 2;
    }
    o.file = argv[optind];
    return nbd_server_run(&o);
}
