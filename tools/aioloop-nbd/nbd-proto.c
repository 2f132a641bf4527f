/*
 * nbd-proto.c - option haggling and request checks of aioloop-nbd.
 *
 * Policy, in one place (doc/proto.md of the NBD project is the
 * reference; "the spec" below):
 *
 *  - Fixed newstyle only. A client that did not set
 *    NBD_FLAG_C_FIXED_NEWSTYLE may only send NBD_OPT_EXPORT_NAME; any
 *    other option from it closes the connection (it could not parse an
 *    error reply). Unknown client flags close the connection (the spec's
 *    MUST).
 *  - Every option other than EXPORT_NAME gets a reply; unknown ones
 *    NBD_REP_ERR_UNSUP, malformed ones NBD_REP_ERR_INVALID, and the
 *    connection stays usable. An EXPORT_NAME that cannot be served
 *    closes the connection, as the spec requires (it has no error reply).
 *  - No TLS (NOTLS mode): STARTTLS gets NBD_REP_ERR_UNSUP.
 *  - Metadata contexts: none are offered. LIST/SET_META_CONTEXT are
 *    parsed and answered with a bare ACK (no context matched), which the
 *    spec defines as the answer when nothing matches.
 *  - Requests: flags a command does not allow, zero lengths, ranges past
 *    the end, misaligned ranges (when the export has an alignment) and
 *    unknown commands fail with the spec's error values; the connection
 *    goes on. A WRITE with more than NBD_MAX_PAYLOAD bytes of payload is
 *    the one request that hangs up: reading and dropping up to 4 GiB to
 *    stay in sync is what the spec lets a server call a denial of service.
 *
 * No function here allocates, reads a socket or a file, or keeps state
 * outside the NbdSession it is given.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <string.h>

#include "nbd-proto.h"

void nbd_session_init(NbdSession *s, const NbdExport *exp)
{
    memset(s, 0, sizeof(*s));
    s->exp = exp;
}

size_t nbd_greeting(uint8_t out[NBD_GREETING_LEN])
{
    nbd_st64(out, NBD_MAGIC);
    nbd_st64(out + 8, NBD_OPTS_MAGIC);
    nbd_st16(out + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    return NBD_GREETING_LEN;
}

int nbd_client_flags(NbdSession *s, const uint8_t in[NBD_CLIENT_FLAGS_LEN])
{
    uint32_t flags = nbd_ld32(in);

    if (flags & ~(uint32_t)(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
        return -EPROTO;
    }
    s->fixed = flags & NBD_FLAG_C_FIXED_NEWSTYLE;
    s->no_zeroes = flags & NBD_FLAG_C_NO_ZEROES;
    return 0;
}

int nbd_option_header(const uint8_t in[NBD_OPTION_HEADER_LEN], NbdOption *opt)
{
    if (nbd_ld64(in) != NBD_OPTS_MAGIC) {
        return -EPROTO;
    }
    opt->option = nbd_ld32(in + 8);
    opt->len = nbd_ld32(in + 12);
    return 0;
}

/* ---- building option replies -------------------------------------------- */

/* Appends an option reply header announcing @len bytes of data, and
 * returns where the data goes (NULL if @out is full: never with the
 * bounded replies built here, but checked all the same). */
static uint8_t *rep_begin(NbdOut *out, uint32_t option, uint32_t type,
                          uint32_t len)
{
    uint8_t *p;

    if (len > sizeof(out->buf) - out->len ||
        sizeof(out->buf) - out->len - len < 20) {
        return NULL;
    }
    p = out->buf + out->len;
    nbd_st64(p, NBD_REP_MAGIC);
    nbd_st32(p + 8, option);
    nbd_st32(p + 12, type);
    nbd_st32(p + 16, len);
    out->len += 20 + len;
    return p + 20;
}

static void rep_ack(NbdOut *out, uint32_t option)
{
    rep_begin(out, option, NBD_REP_ACK, 0);
}

/* An error reply with a message for a human. */
static void rep_err(NbdOut *out, uint32_t option, uint32_t type,
                    const char *msg)
{
    size_t n = strlen(msg);
    uint8_t *p = rep_begin(out, option, type, (uint32_t)n);

    if (p) {
        memcpy(p, msg, n);
    }
}

/* An NBD_REP_INFO reply of @type with @len bytes of payload after the
 * type; returns where that payload goes. */
static uint8_t *rep_info(NbdOut *out, uint32_t option, uint16_t type,
                         uint32_t len)
{
    uint8_t *p = rep_begin(out, option, NBD_REP_INFO, 2 + len);

    if (p) {
        nbd_st16(p, type);
        p += 2;
    }
    return p;
}

/* ---- the options ---------------------------------------------------------- */

/* Is @name (@len bytes, not NUL-terminated) this server's export? The
 * empty name is the default export, which is the only one. */
static bool name_matches(const NbdSession *s, const uint8_t *name,
                         uint32_t len)
{
    size_t n = strlen(s->exp->name);

    if (len == 0) {
        return true;
    }
    return len == n && memcmp(name, s->exp->name, n) == 0;
}

/* A valid protocol string: at most NBD_MAX_STRING bytes, no NUL. */
static bool valid_string(const uint8_t *p, uint32_t len)
{
    return len <= NBD_MAX_STRING && (len == 0 || !memchr(p, 0, len));
}

static uint16_t final_tflags(const NbdSession *s)
{
    uint16_t f = s->exp->tflags | NBD_FLAG_HAS_FLAGS;

    return s->structured ? (uint16_t)(f | NBD_FLAG_SEND_DF) : f;
}

static NbdOptAction opt_export_name(NbdSession *s, const uint8_t *data,
                                    uint32_t len, NbdOut *out)
{
    uint8_t *p;

    if (!data || !valid_string(data, len) || !name_matches(s, data, len)) {
        return NBD_OPT_CLOSE;   /* no error reply exists for this option */
    }
    p = out->buf;
    s->tflags = final_tflags(s);
    nbd_st64(p, s->exp->size);
    nbd_st16(p + 8, s->tflags);
    out->len = 10;
    if (!s->no_zeroes) {
        memset(p + 10, 0, 124);
        out->len += 124;
    }
    s->transmission = true;
    return NBD_OPT_TRANSMISSION;
}

static NbdOptAction opt_list(NbdSession *s, uint32_t len, NbdOut *out)
{
    size_t n = strlen(s->exp->name);
    uint8_t *p;

    if (len != 0) {
        rep_err(out, NBD_OPT_LIST, NBD_REP_ERR_INVALID,
                "NBD_OPT_LIST takes no data");
        return NBD_OPT_NEXT;
    }
    p = rep_begin(out, NBD_OPT_LIST, NBD_REP_SERVER, (uint32_t)(4 + n));
    if (p) {
        nbd_st32(p, (uint32_t)n);
        memcpy(p + 4, s->exp->name, n);
    }
    rep_ack(out, NBD_OPT_LIST);
    return NBD_OPT_NEXT;
}

static NbdOptAction opt_info_go(NbdSession *s, uint32_t option,
                                const uint8_t *data, uint32_t len,
                                NbdOut *out)
{
    const NbdExport *e = s->exp;
    uint32_t name_len, i;
    uint16_t nreq;
    bool want_name = false, want_desc = false, want_bs = false;
    uint8_t *p;

    /* 32-bit name length, name, 16-bit count, count 16-bit requests. */
    if (len < 6) {
        rep_err(out, option, NBD_REP_ERR_INVALID, "option data too short");
        return NBD_OPT_NEXT;
    }
    name_len = nbd_ld32(data);
    if (name_len > len - 6) {
        rep_err(out, option, NBD_REP_ERR_INVALID,
                "export name length beyond the option data");
        return NBD_OPT_NEXT;
    }
    nreq = nbd_ld16(data + 4 + name_len);
    if ((uint64_t)len != 6 + (uint64_t)name_len + 2 * (uint64_t)nreq) {
        rep_err(out, option, NBD_REP_ERR_INVALID,
                "information request count does not match the length");
        return NBD_OPT_NEXT;
    }
    if (!valid_string(data + 4, name_len)) {
        rep_err(out, option, NBD_REP_ERR_INVALID, "invalid export name");
        return NBD_OPT_NEXT;
    }
    if (!name_matches(s, data + 4, name_len)) {
        rep_err(out, option, NBD_REP_ERR_UNKNOWN,
                "export not available on this server");
        return NBD_OPT_NEXT;
    }
    for (i = 0; i < nreq; i++) {
        switch (nbd_ld16(data + 6 + name_len + 2 * i)) {
        case NBD_INFO_NAME:
            want_name = true;
            break;
        case NBD_INFO_DESCRIPTION:
            want_desc = true;
            break;
        case NBD_INFO_BLOCK_SIZE:
            want_bs = true;
            break;
        default:
            break;              /* unknown requests are ignored (spec) */
        }
    }

    p = rep_info(out, option, NBD_INFO_EXPORT, 10);
    if (p) {
        nbd_st64(p, e->size);
        nbd_st16(p + 8, final_tflags(s));
    }
    if (want_name) {
        size_t n = strlen(e->name);

        p = rep_info(out, option, NBD_INFO_NAME, (uint32_t)n);
        if (p) {
            memcpy(p, e->name, n);
        }
    }
    if (want_desc && e->description) {
        size_t n = strlen(e->description);

        n = n > NBD_MAX_STRING ? NBD_MAX_STRING : n;
        p = rep_info(out, option, NBD_INFO_DESCRIPTION, (uint32_t)n);
        if (p) {
            memcpy(p, e->description, n);
        }
    }
    /* Always sent: a client that did not ask may ignore it, and one that
     * did learns the alignment O_DIRECT needs. */
    p = rep_info(out, option, NBD_INFO_BLOCK_SIZE, 12);
    if (p) {
        nbd_st32(p, e->min_block);
        nbd_st32(p + 4, e->pref_block);
        nbd_st32(p + 8, e->max_payload);
    }
    rep_ack(out, option);
    if (option == NBD_OPT_INFO) {
        return NBD_OPT_NEXT;
    }
    s->block_size_agreed = want_bs;
    s->tflags = final_tflags(s);
    s->transmission = true;
    return NBD_OPT_TRANSMISSION;
}

/* LIST_META_CONTEXT and SET_META_CONTEXT: export name, query count,
 * queries. No context is offered, so a well-formed request selects
 * nothing and gets a bare ACK. */
static NbdOptAction opt_meta_context(NbdSession *s, uint32_t option,
                                     const uint8_t *data, uint32_t len,
                                     NbdOut *out)
{
    uint32_t name_len, nq, pos, i;

    if (!s->structured) {
        rep_err(out, option, NBD_REP_ERR_INVALID,
                "negotiate structured replies first");
        return NBD_OPT_NEXT;
    }
    if (len < 8 || (name_len = nbd_ld32(data)) > len - 8) {
        rep_err(out, option, NBD_REP_ERR_INVALID, "malformed request");
        return NBD_OPT_NEXT;
    }
    if (!valid_string(data + 4, name_len)) {
        rep_err(out, option, NBD_REP_ERR_INVALID, "invalid export name");
        return NBD_OPT_NEXT;
    }
    nq = nbd_ld32(data + 4 + name_len);
    pos = 8 + name_len;
    for (i = 0; i < nq; i++) {
        uint32_t qlen;

        if (len - pos < 4 || (qlen = nbd_ld32(data + pos)) > len - pos - 4 ||
            !valid_string(data + pos + 4, qlen)) {
            rep_err(out, option, NBD_REP_ERR_INVALID, "malformed query");
            return NBD_OPT_NEXT;
        }
        pos += 4 + qlen;
    }
    if (pos != len) {
        rep_err(out, option, NBD_REP_ERR_INVALID,
                "trailing bytes after the queries");
        return NBD_OPT_NEXT;
    }
    if (!name_matches(s, data + 4, name_len)) {
        rep_err(out, option, NBD_REP_ERR_UNKNOWN,
                "export not available on this server");
        return NBD_OPT_NEXT;
    }
    rep_ack(out, option);
    return NBD_OPT_NEXT;
}

NbdOptAction nbd_option(NbdSession *s, const NbdOption *opt,
                        const uint8_t *data, NbdOut *out)
{
    uint32_t o = opt->option;

    out->len = 0;
    s->options++;
    if (s->transmission) {
        return NBD_OPT_CLOSE;   /* caller bug; never answer twice */
    }
    if (!s->fixed && o != NBD_OPT_EXPORT_NAME) {
        return NBD_OPT_CLOSE;   /* plain newstyle: no option replies */
    }
    if (o == NBD_OPT_EXPORT_NAME) {
        return opt_export_name(s, data, opt->len, out);
    }
    if (o == NBD_OPT_ABORT) {
        rep_ack(out, o);        /* its data, if any, is ignored (spec) */
        return NBD_OPT_CLOSE;
    }
    if (!data && opt->len > 0) {
        rep_err(out, o, NBD_REP_ERR_TOO_BIG, "option data too long");
        return NBD_OPT_NEXT;
    }
    switch (o) {
    case NBD_OPT_LIST:
        return opt_list(s, opt->len, out);
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
        return opt_info_go(s, o, data, opt->len, out);
    case NBD_OPT_STRUCTURED_REPLY:
        if (opt->len != 0) {
            rep_err(out, o, NBD_REP_ERR_INVALID,
                    "NBD_OPT_STRUCTURED_REPLY takes no data");
        } else if (s->structured) {
            rep_err(out, o, NBD_REP_ERR_INVALID,
                    "structured replies already negotiated");
        } else {
            s->structured = true;
            rep_ack(out, o);
        }
        return NBD_OPT_NEXT;
    case NBD_OPT_LIST_META_CONTEXT:
    case NBD_OPT_SET_META_CONTEXT:
        return opt_meta_context(s, o, data, opt->len, out);
    case NBD_OPT_STARTTLS:
        rep_err(out, o, NBD_REP_ERR_UNSUP, "TLS is not supported");
        return NBD_OPT_NEXT;
    default:
        rep_err(out, o, NBD_REP_ERR_UNSUP, "option not supported");
        return NBD_OPT_NEXT;
    }
}

/* ---- transmission ----------------------------------------------------------- */

int nbd_request_parse(const uint8_t in[NBD_REQUEST_LEN], NbdRequest *req)
{
    if (nbd_ld32(in) != NBD_REQUEST_MAGIC) {
        return -EPROTO;
    }
    req->flags = nbd_ld16(in + 4);
    req->type = nbd_ld16(in + 6);
    req->cookie = nbd_ld64(in + 8);
    req->offset = nbd_ld64(in + 16);
    req->len = nbd_ld32(in + 24);
    return 0;
}

static NbdCheck fail(uint32_t error, uint32_t payload, const char *msg)
{
    return (NbdCheck){ .action = NBD_REQ_FAIL, .error = error,
                       .payload = payload, .msg = msg };
}

NbdCheck nbd_request_check(const NbdSession *s, const NbdRequest *req)
{
    const NbdExport *e = s->exp;
    uint16_t tf = s->tflags;
    uint32_t allowed = NBD_CMD_FLAG_FUA;     /* accepted on every command */
    uint32_t payload = 0;
    uint32_t past_end = NBD_EINVAL;
    bool ranged = true, writes = false;

    switch (req->type) {
    case NBD_CMD_DISC:
        return (NbdCheck){ .action = NBD_REQ_DISCONNECT };
    case NBD_CMD_READ:
        if (s->structured) {
            allowed |= NBD_CMD_FLAG_DF;
        }
        break;
    case NBD_CMD_WRITE:
        if (req->len > NBD_MAX_PAYLOAD) {
            return (NbdCheck){ .action = NBD_REQ_HANGUP,
                               .msg = "write payload over 32 MiB" };
        }
        payload = req->len;
        writes = true;
        past_end = NBD_ENOSPC;
        break;
    case NBD_CMD_FLUSH:
        ranged = false;         /* offset and length are reserved */
        break;
    case NBD_CMD_TRIM:
        writes = true;
        if (!(tf & NBD_FLAG_SEND_TRIM) && !(tf & NBD_FLAG_READ_ONLY)) {
            return fail(NBD_EINVAL, 0, "trim not offered");
        }
        break;
    case NBD_CMD_WRITE_ZEROES:
        writes = true;
        past_end = NBD_ENOSPC;
        if (tf & NBD_FLAG_SEND_WRITE_ZEROES) {
            allowed |= NBD_CMD_FLAG_NO_HOLE;
        }
        if (tf & NBD_FLAG_SEND_FAST_ZERO) {
            allowed |= NBD_CMD_FLAG_FAST_ZERO;
        }
        if (!(tf & NBD_FLAG_SEND_WRITE_ZEROES) && !(tf & NBD_FLAG_READ_ONLY)) {
            return fail(NBD_EINVAL, 0, "write zeroes not offered");
        }
        break;
    default:
        return fail(NBD_EINVAL, 0, "unknown command");
    }
    if (req->flags & ~allowed) {
        return fail(NBD_EINVAL, payload, "command flag not allowed here");
    }
    if (writes && (tf & NBD_FLAG_READ_ONLY)) {
        return fail(NBD_EPERM, payload, "the export is read-only");
    }
    if (!ranged) {
        return (NbdCheck){ .action = NBD_REQ_SERVE };
    }
    if (req->len == 0) {
        return fail(NBD_EINVAL, 0, "zero-length request");
    }
    if (req->offset > e->size || req->len > e->size - req->offset) {
        return fail(past_end, payload, "request beyond the end of the export");
    }
    if ((req->offset | req->len) & (e->min_block - 1)) {
        return fail(NBD_EINVAL, payload,
                    "request not aligned to the minimum block size");
    }
    if ((req->type == NBD_CMD_READ || req->type == NBD_CMD_WRITE) &&
        req->len > e->max_payload) {
        return fail(NBD_EINVAL, payload, "request over the maximum payload");
    }
    return (NbdCheck){ .action = NBD_REQ_SERVE, .payload = payload };
}

size_t nbd_reply_header(const NbdSession *s, const NbdRequest *req,
                        uint32_t error, const char *msg,
                        uint8_t out[NBD_REPLY_HEADER_MAX])
{
    size_t n;

    if (!s->structured || (error == 0 && req->type != NBD_CMD_READ)) {
        /* Also a success without data under structured replies: the
         * spec allows the shorter simple reply there. */
        nbd_st32(out, NBD_SIMPLE_REPLY_MAGIC);
        nbd_st32(out + 4, error);
        nbd_st64(out + 8, req->cookie);
        return NBD_SIMPLE_REPLY_LEN;
    }
    nbd_st32(out, NBD_STRUCTURED_REPLY_MAGIC);
    nbd_st16(out + 4, NBD_REPLY_FLAG_DONE);
    nbd_st64(out + 8, req->cookie);
    if (error == 0 && req->type == NBD_CMD_READ) {
        nbd_st16(out + 6, NBD_REPLY_TYPE_OFFSET_DATA);
        nbd_st32(out + 16, 8 + req->len);
        nbd_st64(out + 20, req->offset);
        return NBD_READ_CHUNK_HEADER_LEN;
    }
    n = msg ? strlen(msg) : 0;
    n = n > 128 ? 128 : n;
    nbd_st16(out + 6, NBD_REPLY_TYPE_ERROR);
    nbd_st32(out + 16, (uint32_t)(6 + n));
    nbd_st32(out + 20, error);
    nbd_st16(out + 24, (uint16_t)n);
    if (n) {
        memcpy(out + 26, msg, n);
    }
    return NBD_CHUNK_HEADER_LEN + 6 + n;
}

uint32_t nbd_error_from_errno(int err)
{
    switch (err < 0 ? -err : err) {
    case 0:
        return 0;
    case EPERM:
    case EROFS:
        return NBD_EPERM;
    case ENOMEM:
        return NBD_ENOMEM;
    case EINVAL:
        return NBD_EINVAL;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return NBD_ENOSPC;
    case EOVERFLOW:
        return NBD_EOVERFLOW;
    case ENOTSUP:
        return NBD_ENOTSUP;
    case ESHUTDOWN:
        return NBD_ESHUTDOWN;
    default:
        return NBD_EIO;
    }
}
