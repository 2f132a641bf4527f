/*
 * nbd-proto.h - the NBD protocol of aioloop-nbd, without any I/O.
 *
 * Everything the server decides from bytes a client sent lives here: the
 * wire constants (from the NBD project's doc/proto.md), the handshake's
 * option haggling as a function from (session, option) to (reply bytes,
 * next step), and the checks a transmission request passes before any
 * I/O is started. The functions read only the buffers they are given
 * and write only the buffers they are given, so the libFuzzer target
 * (tests/nbd/fuzz-nbd.c) drives exactly the code the server runs, with
 * no sockets or files.
 *
 * The server (server.c) does the reading: it reads the fixed-size parts
 * (the 4 client flag bytes, 16-byte option headers, 28-byte request
 * headers) and the variable parts whose length these functions approve,
 * and sends what they put in an NbdOut.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_NBD_PROTO_H
#define AIOLOOP_NBD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- magic numbers ---------------------------------------------------- */
#define NBD_MAGIC                   0x4e42444d41474943ULL   /* "NBDMAGIC" */
#define NBD_OPTS_MAGIC              0x49484156454f5054ULL   /* "IHAVEOPT" */
#define NBD_REP_MAGIC               0x0003e889045565a9ULL
#define NBD_REQUEST_MAGIC           0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC      0x67446698u
#define NBD_STRUCTURED_REPLY_MAGIC  0x668e33efu

/* ---- handshake flags (server) and client flags -------------------------- */
#define NBD_FLAG_FIXED_NEWSTYLE     (1u << 0)
#define NBD_FLAG_NO_ZEROES          (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE   (1u << 0)
#define NBD_FLAG_C_NO_ZEROES        (1u << 1)

/* ---- options ------------------------------------------------------------ */
#define NBD_OPT_EXPORT_NAME         1
#define NBD_OPT_ABORT               2
#define NBD_OPT_LIST                3
#define NBD_OPT_STARTTLS            5
#define NBD_OPT_INFO                6
#define NBD_OPT_GO                  7
#define NBD_OPT_STRUCTURED_REPLY    8
#define NBD_OPT_LIST_META_CONTEXT   9
#define NBD_OPT_SET_META_CONTEXT    10

/* ---- option replies ----------------------------------------------------- */
#define NBD_REP_ACK                 1u
#define NBD_REP_SERVER              2u
#define NBD_REP_INFO                3u
#define NBD_REP_ERR_UNSUP           (0x80000000u + 1)
#define NBD_REP_ERR_POLICY          (0x80000000u + 2)
#define NBD_REP_ERR_INVALID         (0x80000000u + 3)
#define NBD_REP_ERR_UNKNOWN         (0x80000000u + 6)
#define NBD_REP_ERR_SHUTDOWN        (0x80000000u + 7)
#define NBD_REP_ERR_TOO_BIG         (0x80000000u + 9)

#define NBD_INFO_EXPORT             0
#define NBD_INFO_NAME               1
#define NBD_INFO_DESCRIPTION        2
#define NBD_INFO_BLOCK_SIZE         3

/* ---- transmission flags ------------------------------------------------- */
#define NBD_FLAG_HAS_FLAGS          (1u << 0)
#define NBD_FLAG_READ_ONLY          (1u << 1)
#define NBD_FLAG_SEND_FLUSH         (1u << 2)
#define NBD_FLAG_SEND_FUA           (1u << 3)
#define NBD_FLAG_SEND_TRIM          (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES  (1u << 6)
#define NBD_FLAG_SEND_DF            (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN     (1u << 8)
#define NBD_FLAG_SEND_FAST_ZERO     (1u << 11)

/* ---- commands and their flags ------------------------------------------- */
#define NBD_CMD_READ                0
#define NBD_CMD_WRITE               1
#define NBD_CMD_DISC                2
#define NBD_CMD_FLUSH               3
#define NBD_CMD_TRIM                4
#define NBD_CMD_CACHE               5
#define NBD_CMD_WRITE_ZEROES        6
#define NBD_CMD_BLOCK_STATUS        7

#define NBD_CMD_FLAG_FUA            (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE        (1u << 1)
#define NBD_CMD_FLAG_DF             (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE        (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO      (1u << 4)

/* ---- structured replies ------------------------------------------------- */
#define NBD_REPLY_FLAG_DONE         (1u << 0)
#define NBD_REPLY_TYPE_NONE         0
#define NBD_REPLY_TYPE_OFFSET_DATA  1
#define NBD_REPLY_TYPE_ERROR        0x8001u

/* ---- error values ------------------------------------------------------- */
#define NBD_EPERM                   1
#define NBD_EIO                     5
#define NBD_ENOMEM                  12
#define NBD_EINVAL                  22
#define NBD_ENOSPC                  28
#define NBD_EOVERFLOW               75
#define NBD_ENOTSUP                 95
#define NBD_ESHUTDOWN               108

/* ---- sizes -------------------------------------------------------------- */
#define NBD_GREETING_LEN            18  /* magic, opts magic, handshake flags */
#define NBD_CLIENT_FLAGS_LEN        4
#define NBD_OPTION_HEADER_LEN       16
#define NBD_REQUEST_LEN             28
#define NBD_SIMPLE_REPLY_LEN        16
#define NBD_CHUNK_HEADER_LEN        20
/* The header of a structured read reply: chunk header + 64-bit offset. */
#define NBD_READ_CHUNK_HEADER_LEN   (NBD_CHUNK_HEADER_LEN + 8)
/* The longest string the protocol allows (export names, messages). */
#define NBD_MAX_STRING              4096
/* Option data longer than this is not kept: the server discards it and
 * answers NBD_REP_ERR_TOO_BIG (an NBD_OPT_GO with a 4096-byte name and
 * every information request fits). */
#define NBD_MAX_OPTION_DATA         (64 * 1024)
/* The largest READ or WRITE payload served (the protocol's interoperable
 * maximum, 2^25); a WRITE announcing more is a hard disconnect. */
#define NBD_MAX_PAYLOAD             (32u * 1024 * 1024)
/* Room for all the replies to one option (NbdOut's capacity). */
#define NBD_OUT_MAX                 (3 * NBD_MAX_STRING + 256)
/* Room for any reply header built by nbd_reply_header(). */
#define NBD_REPLY_HEADER_MAX        (NBD_CHUNK_HEADER_LEN + 6 + 128)

/* ---- what the server exports -------------------------------------------- */
typedef struct NbdExport {
    const char *name;           /* the export's name ("" by default) */
    const char *description;    /* NBD_INFO_DESCRIPTION; NULL: none */
    uint64_t size;              /* bytes */
    uint16_t tflags;            /* transmission flags (SEND_DF is added when
                                 * structured replies are negotiated) */
    uint32_t min_block;         /* alignment of offsets and lengths (a power
                                 * of two: 1, or the O_DIRECT alignment) */
    uint32_t pref_block;        /* preferred block size */
    uint32_t max_payload;       /* largest READ/WRITE, <= NBD_MAX_PAYLOAD */
} NbdExport;

/* The negotiated state of one connection. */
typedef struct NbdSession {
    const NbdExport *exp;
    bool fixed;                 /* client set NBD_FLAG_C_FIXED_NEWSTYLE */
    bool no_zeroes;             /* client set NBD_FLAG_C_NO_ZEROES */
    bool structured;            /* NBD_OPT_STRUCTURED_REPLY acknowledged */
    bool block_size_agreed;     /* NBD_OPT_GO asked for NBD_INFO_BLOCK_SIZE */
    bool transmission;          /* handshake over */
    uint16_t tflags;            /* flags sent on entering transmission */
    unsigned options;           /* options received */
} NbdSession;

/* A bounded output buffer: replies are appended to buf[len..cap). */
typedef struct NbdOut {
    uint8_t buf[NBD_OUT_MAX];
    size_t len;
} NbdOut;

/* An option header, decoded. */
typedef struct NbdOption {
    uint32_t option;
    uint32_t len;               /* bytes of data that follow */
} NbdOption;

/* What the server does after an option's replies are sent. */
typedef enum NbdOptAction {
    NBD_OPT_NEXT,               /* read the next option */
    NBD_OPT_TRANSMISSION,       /* enter the transmission phase */
    NBD_OPT_CLOSE,              /* close the connection */
} NbdOptAction;

/* A transmission request header, decoded. */
typedef struct NbdRequest {
    uint16_t flags;
    uint16_t type;
    uint64_t cookie;
    uint64_t offset;
    uint32_t len;
} NbdRequest;

/* What the server does with a request (nbd_request_check()). */
typedef enum NbdReqAction {
    NBD_REQ_SERVE,              /* valid: do it (after reading payload) */
    NBD_REQ_FAIL,               /* read and drop payload, reply error */
    NBD_REQ_DISCONNECT,         /* NBD_CMD_DISC: finish in-flight, close */
    NBD_REQ_HANGUP,             /* unrecoverable: close without a reply */
} NbdReqAction;

typedef struct NbdCheck {
    NbdReqAction action;
    uint32_t error;             /* NBD_E* for NBD_REQ_FAIL */
    uint32_t payload;           /* bytes that follow the header */
    const char *msg;            /* why (for an error chunk or a log) */
} NbdCheck;

/* ---- big-endian helpers ------------------------------------------------- */
static inline uint16_t nbd_ld16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t nbd_ld32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t nbd_ld64(const uint8_t *p)
{
    return (uint64_t)nbd_ld32(p) << 32 | nbd_ld32(p + 4);
}

static inline void nbd_st16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void nbd_st32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void nbd_st64(uint8_t *p, uint64_t v)
{
    nbd_st32(p, (uint32_t)(v >> 32));
    nbd_st32(p + 4, (uint32_t)v);
}

/* ---- handshake ---------------------------------------------------------- */

/* Starts the state of a connection serving @exp. */
void nbd_session_init(NbdSession *s, const NbdExport *exp);

/* The server's first 18 bytes: NBDMAGIC, IHAVEOPT, handshake flags
 * (fixed newstyle, no zeroes). Returns NBD_GREETING_LEN. */
size_t nbd_greeting(uint8_t out[NBD_GREETING_LEN]);

/* The client's 32-bit flags. Returns 0, or -EPROTO for a flag the server
 * did not offer (the connection must then be dropped). */
int nbd_client_flags(NbdSession *s, const uint8_t in[NBD_CLIENT_FLAGS_LEN]);

/* Decodes an option header. Returns 0, or -EPROTO for a wrong magic. */
int nbd_option_header(const uint8_t in[NBD_OPTION_HEADER_LEN], NbdOption *opt);

/*
 * Answers option @opt whose @opt->len bytes of data are @data, or NULL
 * when the data was longer than NBD_MAX_OPTION_DATA and was discarded.
 * Appends the replies to @out (which it empties first) and returns what
 * to do once they are sent. On NBD_OPT_TRANSMISSION @s->tflags holds the
 * flags sent and @s->transmission is true.
 */
NbdOptAction nbd_option(NbdSession *s, const NbdOption *opt,
                        const uint8_t *data, NbdOut *out);

/* ---- transmission ------------------------------------------------------- */

/* Decodes a request header. Returns 0, or -EPROTO for a wrong magic. */
int nbd_request_parse(const uint8_t in[NBD_REQUEST_LEN], NbdRequest *req);

/*
 * Decides what to do with @req: serve it, fail it with an NBD error
 * (flags not allowed, zero length, beyond the export, misaligned, over
 * the maximum payload, a write to a read-only export, an unknown
 * command), disconnect, or hang up (a WRITE whose payload is over
 * NBD_MAX_PAYLOAD: the stream cannot be resynchronised cheaply).
 */
NbdCheck nbd_request_check(const NbdSession *s, const NbdRequest *req);

/*
 * Builds the reply header for @req finished with NBD error @error (0:
 * success) into @out. For a successful READ the @req->len data bytes
 * must follow it; otherwise the header is the whole reply. Simple
 * replies unless structured replies were negotiated, then an
 * OFFSET_DATA chunk for read data and an ERROR chunk carrying @msg (may
 * be NULL; cut to 128 bytes) for errors; a success without data is
 * always a simple reply (the spec allows it with structured replies).
 * Returns the header's length.
 */
size_t nbd_reply_header(const NbdSession *s, const NbdRequest *req,
                        uint32_t error, const char *msg,
                        uint8_t out[NBD_REPLY_HEADER_MAX]);

/* The NBD error for a negative errno from the I/O. */
uint32_t nbd_error_from_errno(int err);

#endif /* AIOLOOP_NBD_PROTO_H */
