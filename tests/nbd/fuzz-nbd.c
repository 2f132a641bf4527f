/*
 * fuzz-nbd.c - libFuzzer target for aioloop-nbd's protocol code
 * (tools/aioloop-nbd/nbd-proto.c): the input is what a client sends,
 * byte for byte, and this driver reads it the way server.c does (client
 * flags, option headers and data, request headers and payloads) through
 * the same functions, then checks what they decided:
 *
 *  - option replies parse back: the reply magic, the option echoed, a
 *    length that matches the bytes, an ACK or an error last, an
 *    NBD_INFO_EXPORT before a successful GO/INFO's ACK, the 10 or 134
 *    bytes of an EXPORT_NAME; CLOSE and TRANSMISSION exactly when the
 *    spec says;
 *  - a request the checks let through is within the export, aligned,
 *    not over the maximum payload, not a write to a read-only export,
 *    with only allowed flags; the payload the server will read is the
 *    WRITE's length and nothing else; HANGUP only for an oversized WRITE;
 *  - every reply header parses back with the request's cookie and a
 *    length that covers exactly what follows.
 *
 * The first input byte picks the export (size, alignment, read-only,
 * name), so one corpus covers them all. Violations abort().
 *
 * Built three ways: with -fsanitize=fuzzer by make fuzz-nbd (clang), and
 * with tests/fuzz/replay-main.c as fuzz-nbd-replay, which make check
 * runs over tests/nbd/corpus.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fuzz/fuzz.h"
#include "../../tools/aioloop-nbd/nbd-proto.h"

#define VIOLATION(...) do { \
    fprintf(stderr, "fuzz-nbd: violation at %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); \
    fputc('\n', stderr); \
    abort(); \
} while (0)

typedef struct Input {
    const uint8_t *p;
    size_t left;
} Input;

static const uint8_t *take(Input *in, size_t n)
{
    const uint8_t *p = in->p;

    if (n > in->left) {
        return NULL;
    }
    in->p += n;
    in->left -= n;
    return p;
}

static void pick_export(uint8_t sel, NbdExport *e)
{
    static const uint64_t sizes[] = {
        0, 1, 512, 4096, 65536, 1ULL << 30, (1ULL << 63) + 4096, UINT64_MAX,
    };
    static const uint32_t aligns[] = { 1, 512, 4096, 1 };

    memset(e, 0, sizeof(*e));
    e->name = sel & 0x40 ? "disk" : "";
    e->description = sel & 0x80 ? "a fuzzed export" : NULL;
    e->size = sizes[sel & 7];
    e->min_block = aligns[(sel >> 3) & 3];
    e->pref_block = 4096;
    e->max_payload = NBD_MAX_PAYLOAD;
    e->tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
                NBD_FLAG_CAN_MULTI_CONN;
    if (sel & 0x20) {
        e->tflags |= NBD_FLAG_READ_ONLY;
    } else {
        e->tflags |= NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
                     NBD_FLAG_SEND_FAST_ZERO;
    }
}

/* Checks the replies to option @opt in @out, given the action taken. */
static void check_option_replies(const NbdSession *s, const NbdOption *opt,
                                 const NbdOut *out, NbdOptAction act)
{
    size_t pos = 0;
    uint32_t last = 0;
    bool saw_export = false;

    if (out->len > sizeof(out->buf)) {
        VIOLATION("output length %zu over the buffer", out->len);
    }
    if (opt->option == NBD_OPT_EXPORT_NAME) {
        if (act == NBD_OPT_TRANSMISSION) {
            if (out->len != (s->no_zeroes ? 10u : 134u) ||
                nbd_ld64(out->buf) != s->exp->size ||
                nbd_ld16(out->buf + 8) != s->tflags) {
                VIOLATION("EXPORT_NAME reply of %zu bytes", out->len);
            }
        } else if (act != NBD_OPT_CLOSE || out->len != 0) {
            VIOLATION("EXPORT_NAME refused without closing");
        }
        return;
    }
    if (!s->fixed && act != NBD_OPT_CLOSE) {
        VIOLATION("option %u answered to a plain newstyle client",
                  opt->option);
    }
    while (pos < out->len) {
        uint32_t len;

        if (out->len - pos < 20 || nbd_ld64(out->buf + pos) != NBD_REP_MAGIC ||
            nbd_ld32(out->buf + pos + 8) != opt->option) {
            VIOLATION("malformed option reply at %zu", pos);
        }
        if (last == NBD_REP_ACK || (last & 0x80000000u)) {
            VIOLATION("a reply after the final one");
        }
        last = nbd_ld32(out->buf + pos + 12);
        len = nbd_ld32(out->buf + pos + 16);
        if (len > out->len - pos - 20) {
            VIOLATION("option reply length %u past the output", len);
        }
        if (last == NBD_REP_INFO) {
            uint16_t type = len >= 2 ? nbd_ld16(out->buf + pos + 20) : 0xffff;

            if (len < 2 || (type == NBD_INFO_EXPORT && len != 12) ||
                (type == NBD_INFO_BLOCK_SIZE && len != 14)) {
                VIOLATION("NBD_REP_INFO type %u of length %u", type, len);
            }
            saw_export |= type == NBD_INFO_EXPORT;
        } else if (last == NBD_REP_ACK && len != 0) {
            VIOLATION("ACK with data");
        }
        pos += 20 + len;
    }
    if (s->fixed && opt->option != NBD_OPT_EXPORT_NAME &&
        !(last == NBD_REP_ACK || (last & 0x80000000u))) {
        VIOLATION("option %u without a final reply", opt->option);
    }
    if ((opt->option == NBD_OPT_GO || opt->option == NBD_OPT_INFO) &&
        last == NBD_REP_ACK && !saw_export) {
        VIOLATION("GO/INFO acknowledged without NBD_INFO_EXPORT");
    }
    if ((act == NBD_OPT_TRANSMISSION) !=
        (opt->option == NBD_OPT_GO && last == NBD_REP_ACK)) {
        VIOLATION("transmission entered by option %u (last reply %x)",
                  opt->option, last);
    }
    if (act == NBD_OPT_CLOSE && s->fixed && opt->option != NBD_OPT_ABORT) {
        VIOLATION("option %u closed a fixed-newstyle session", opt->option);
    }
}

static void check_request(const NbdSession *s, const NbdRequest *r,
                          const NbdCheck *ck)
{
    const NbdExport *e = s->exp;
    bool data = r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE;
    bool write = r->type == NBD_CMD_WRITE || r->type == NBD_CMD_TRIM ||
                 r->type == NBD_CMD_WRITE_ZEROES;
    uint8_t hdr[NBD_REPLY_HEADER_MAX];
    uint32_t err;
    size_t n;

    if (ck->action == NBD_REQ_HANGUP &&
        !(r->type == NBD_CMD_WRITE && r->len > NBD_MAX_PAYLOAD)) {
        VIOLATION("hang-up on request type %u len %u", r->type, r->len);
    }
    if ((ck->action == NBD_REQ_DISCONNECT) != (r->type == NBD_CMD_DISC)) {
        VIOLATION("disconnect decided for type %u", r->type);
    }
    if ((ck->action == NBD_REQ_SERVE || ck->action == NBD_REQ_FAIL) &&
        ck->payload != (r->type == NBD_CMD_WRITE ? r->len : 0)) {
        VIOLATION("payload %u for type %u len %u", ck->payload, r->type,
                  r->len);
    }
    if (ck->action == NBD_REQ_FAIL && ck->error == 0) {
        VIOLATION("failure without an error");
    }
    if (ck->action == NBD_REQ_SERVE) {
        if (r->type > NBD_CMD_WRITE_ZEROES || r->type == NBD_CMD_CACHE) {
            VIOLATION("serving unknown type %u", r->type);
        }
        if (write && (s->tflags & NBD_FLAG_READ_ONLY)) {
            VIOLATION("serving a write on a read-only export");
        }
        if (r->flags & ~(NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE |
                         NBD_CMD_FLAG_DF | NBD_CMD_FLAG_FAST_ZERO)) {
            VIOLATION("serving flags %x", r->flags);
        }
        if ((r->flags & NBD_CMD_FLAG_DF) &&
            (r->type != NBD_CMD_READ || !s->structured)) {
            VIOLATION("DF served on type %u", r->type);
        }
        if (r->type != NBD_CMD_FLUSH) {
            if (r->len == 0 || r->offset > e->size ||
                r->len > e->size - r->offset) {
                VIOLATION("serving [%llu, +%u) of %llu bytes",
                          (unsigned long long)r->offset, r->len,
                          (unsigned long long)e->size);
            }
            if ((r->offset | r->len) % e->min_block) {
                VIOLATION("serving a misaligned request");
            }
            if (data && r->len > e->max_payload) {
                VIOLATION("serving %u bytes", r->len);
            }
        }
    }
    if (ck->action != NBD_REQ_SERVE && ck->action != NBD_REQ_FAIL) {
        return;
    }
    /* The reply, for success and for the error. */
    for (err = 0; err < 2; err++) {
        uint32_t e2 = err ? (ck->error ? ck->error : NBD_EIO) : 0;

        if (ck->action == NBD_REQ_FAIL && !err) {
            continue;
        }
        n = nbd_reply_header(s, r, e2, ck->msg, hdr);
        if (n > sizeof(hdr) || n < NBD_SIMPLE_REPLY_LEN ||
            nbd_ld64(hdr + 8) != r->cookie) {
            VIOLATION("reply header of %zu bytes", n);
        }
        if (nbd_ld32(hdr) == NBD_SIMPLE_REPLY_MAGIC) {
            if (n != NBD_SIMPLE_REPLY_LEN || nbd_ld32(hdr + 4) != e2 ||
                (s->structured && r->type == NBD_CMD_READ)) {
                VIOLATION("bad simple reply");
            }
        } else if (nbd_ld32(hdr) == NBD_STRUCTURED_REPLY_MAGIC) {
            uint32_t len = nbd_ld32(hdr + 16);
            uint16_t type = nbd_ld16(hdr + 6);

            if (!s->structured || !(nbd_ld16(hdr + 4) & NBD_REPLY_FLAG_DONE)) {
                VIOLATION("structured reply not negotiated or not done");
            }
            if (type == NBD_REPLY_TYPE_OFFSET_DATA) {
                if (e2 || n != NBD_READ_CHUNK_HEADER_LEN ||
                    len != 8 + r->len || nbd_ld64(hdr + 20) != r->offset) {
                    VIOLATION("bad OFFSET_DATA chunk");
                }
            } else if (type == NBD_REPLY_TYPE_ERROR) {
                if (!e2 || len != n - 20 || len < 6 ||
                    nbd_ld32(hdr + 20) != e2 ||
                    nbd_ld16(hdr + 24) != len - 6) {
                    VIOLATION("bad ERROR chunk");
                }
            } else {
                VIOLATION("chunk type %u", type);
            }
        } else {
            VIOLATION("reply magic %x", nbd_ld32(hdr));
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Input in = { data, size };
    NbdExport exp;
    NbdSession s;
    NbdOut *out;
    const uint8_t *p;
    uint8_t greet[NBD_GREETING_LEN];

    if (size < 1) {
        return 0;
    }
    pick_export(*take(&in, 1), &exp);
    nbd_session_init(&s, &exp);
    if (nbd_greeting(greet) != NBD_GREETING_LEN ||
        nbd_ld64(greet) != NBD_MAGIC) {
        VIOLATION("greeting");
    }
    p = take(&in, NBD_CLIENT_FLAGS_LEN);
    if (!p || nbd_client_flags(&s, p) < 0) {
        return 0;
    }
    out = malloc(sizeof(*out));
    if (!out) {
        return 0;
    }
    while (!s.transmission) {
        NbdOption opt;
        NbdOptAction act;
        const uint8_t *d;

        p = take(&in, NBD_OPTION_HEADER_LEN);
        if (!p || nbd_option_header(p, &opt) < 0) {
            goto done;
        }
        if (opt.len > NBD_MAX_OPTION_DATA) {
            /* The server drops the data (all of it must arrive). */
            if (opt.option == NBD_OPT_EXPORT_NAME || !take(&in, opt.len)) {
                goto done;
            }
            d = NULL;
        } else {
            d = take(&in, opt.len);
            if (!d) {
                goto done;
            }
        }
        act = nbd_option(&s, &opt, d, out);
        check_option_replies(&s, &opt, out, act);
        if (act == NBD_OPT_CLOSE) {
            goto done;
        }
        if ((act == NBD_OPT_TRANSMISSION) != s.transmission) {
            VIOLATION("transmission flag out of step");
        }
    }
    for (;;) {
        NbdRequest r;
        NbdCheck ck;

        p = take(&in, NBD_REQUEST_LEN);
        if (!p || nbd_request_parse(p, &r) < 0) {
            break;
        }
        ck = nbd_request_check(&s, &r);
        check_request(&s, &r, &ck);
        if (ck.action == NBD_REQ_DISCONNECT || ck.action == NBD_REQ_HANGUP ||
            !take(&in, ck.payload)) {
            break;
        }
    }
done:
    free(out);
    return 0;
}
