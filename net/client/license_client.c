/* license_client.c: the C client of the agent's wire protocol v1 (docs/protocol.md).
 * Plain C11 + POSIX/Linux libc only, so the static library drags in no C++ runtime.
 * The socket is non-blocking; every wait goes through poll() against one deadline per call. */
#define _GNU_SOURCE

#include "license_client.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum {
    MAX_FRAME = 16384, /* largest value of the u32 length field */
    PREFIX = 4,        /* the u32 length field */
    HEADER = 6,        /* length + version + type */
    WIRE_MAX = MAX_FRAME + PREFIX,
    MAX_BODY = MAX_FRAME - 2,
    NONCE = 16,
    MAX_ERROR_MESSAGE = 200,
    RESULT_FIXED = NONCE + 4 + 16,
    /* Every string of a RESULT is copied with a NUL; there are at most 3 + features + 2 × meta. */
    ARENA = MAX_BODY + 3 + LSA_MAX_FEATURES + 2 * LSA_MAX_META
};

enum {
    T_HELLO = 0x01,
    T_VALIDATE = 0x02,
    T_STATUS = 0x03,
    T_HELLO_OK = 0x81,
    T_RESULT = 0x82,
    T_STATUS_OK = 0x83,
    T_ERROR = 0xFF
};

enum { FLAG_HAS_CLAIMS = 0x01, FLAG_HAS_EXP = 0x02 };

struct lsa_client {
    int fd;
    int timeout_ms;
    int broken;    /* a failure left the stream in an unknown state: refuse further calls */
    int has_error; /* error_message holds the last ERROR frame's message */
    unsigned server_max_frame;
    unsigned server_max_token;
    char error_message[MAX_ERROR_MESSAGE + 1];
    const char* features[LSA_MAX_FEATURES];
    lsa_meta meta[LSA_MAX_META];
    unsigned char tx[WIRE_MAX];
    unsigned char rx[WIRE_MAX];
    char arena[ARENA];
};

/* One received frame; body points into client->rx. */
struct frame {
    unsigned type;
    const unsigned char* body;
    size_t len;
};

/* ---- time ---------------------------------------------------------------------------------- */

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec;
}

static int64_t deadline_after(int timeout_ms) { return now_ns() + (int64_t)timeout_ms * 1000000; }

/* Milliseconds left before the deadline, rounded up so poll never wakes early; 0 when past. */
static int ms_left(int64_t deadline) {
    int64_t left = deadline - now_ns();
    if (left <= 0) return 0;
    left = (left + 999999) / 1000000;
    return left > INT_MAX ? INT_MAX : (int)left;
}

/* Waits until fd is ready for `events` or the deadline passes. */
static int wait_fd(int fd, short events, int64_t deadline) {
    for (;;) {
        int left = ms_left(deadline);
        if (left == 0) return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events, .revents = 0};
        int r = poll(&p, 1, left);
        if (r > 0) return 0; /* POLLERR / POLLHUP too: the next send/recv reports the cause */
        if (r < 0 && errno != EINTR) return -errno;
    }
}

/* ---- byte I/O ------------------------------------------------------------------------------ */

static int send_all(int fd, const unsigned char* buf, size_t len, int64_t deadline) {
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int r = wait_fd(fd, POLLOUT, deadline);
            if (r < 0) return r;
            continue;
        }
        return n < 0 ? -errno : -EIO;
    }
    return 0;
}

/* Reads exactly len bytes. End of stream: -ECONNRESET before the first byte of a frame
 * (frame_start), -EPROTO inside one. */
static int recv_exact(int fd, unsigned char* buf, size_t len, int64_t deadline, int frame_start) {
    size_t off = 0;
    while (off < len) {
        ssize_t n = recv(fd, buf + off, len - off, 0);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n == 0) return (frame_start && off == 0) ? -ECONNRESET : -EPROTO;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int r = wait_fd(fd, POLLIN, deadline);
            if (r < 0) return r;
            continue;
        }
        return -errno;
    }
    return 0;
}

static unsigned get_u16(const unsigned char* p) { return ((unsigned)p[0] << 8) | p[1]; }

static uint32_t get_u32(const unsigned char* p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int64_t get_i64(const unsigned char* p) {
    uint64_t u = ((uint64_t)get_u32(p) << 32) | get_u32(p + 4);
    int64_t v;
    memcpy(&v, &u, sizeof v); /* two's complement reinterpretation, no overflow */
    return v;
}

static unsigned char* put_u16(unsigned char* p, size_t v) {
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
    return p + 2;
}

static unsigned char* put_header(unsigned char* p, unsigned type, size_t body) {
    size_t length = body + 2;
    p[0] = (unsigned char)(length >> 24);
    p[1] = (unsigned char)(length >> 16);
    p[2] = (unsigned char)(length >> 8);
    p[3] = (unsigned char)length;
    p[4] = LSA_PROTOCOL_VERSION;
    p[5] = (unsigned char)type;
    return p + HEADER;
}

static unsigned char* put_bytes(unsigned char* p, const void* src, size_t n) {
    if (n > 0) memcpy(p, src, n);
    return p + n;
}

/* ---- frames -------------------------------------------------------------------------------- */

static int read_frame(lsa_client* c, int64_t deadline, struct frame* f) {
    int r = recv_exact(c->fd, c->rx, PREFIX, deadline, 1);
    if (r < 0) return r;
    uint32_t length = get_u32(c->rx);
    if (length < 2 || length > MAX_FRAME) return -EPROTO;
    r = recv_exact(c->fd, c->rx + PREFIX, length, deadline, 0);
    if (r < 0) return r;
    if (c->rx[4] != LSA_PROTOCOL_VERSION) return -EPROTO;
    f->type = c->rx[5];
    f->body = c->rx + HEADER;
    f->len = (size_t)length - 2;
    return 0;
}

/* Sends the request in c->tx and reads one answer. Any failure breaks the connection.
 * If the agent closed first (it refused us), its pending ERROR frame is still read. */
static int transact(lsa_client* c, size_t req_len, int64_t deadline, struct frame* f) {
    if (c->broken) return -ENOTCONN;
    c->has_error = 0;
    int r = send_all(c->fd, c->tx, req_len, deadline);
    if (r == -EPIPE || r == -ECONNRESET) {
        int rr = read_frame(c, deadline, f);
        if (rr == 0 && f->type == T_ERROR) return 0;
    }
    if (r == 0) r = read_frame(c, deadline, f);
    if (r < 0) c->broken = 1;
    return r;
}

/* Decodes an ERROR body into c->error_message; returns the status code or -EPROTO. */
static int take_error(lsa_client* c, const struct frame* f) {
    if (f->len < 5) return -EPROTO;
    size_t msg_len = get_u16(f->body + 3);
    if (5 + msg_len != f->len) return -EPROTO;
    /* Messages are at most 200 bytes by spec; a longer one is cut, it is only for humans. */
    size_t n = msg_len > MAX_ERROR_MESSAGE ? MAX_ERROR_MESSAGE : msg_len;
    memcpy(c->error_message, f->body + 5, n);
    c->error_message[n] = '\0';
    c->has_error = 1;
    return f->body[0];
}

/* The errno that stands for an ERROR frame answering a HELLO or STATUS request. */
static int error_code_to_errno(int code) {
    switch (code) {
        case LSA_STATUS_UNAUTHORIZED:
            return -EACCES;
        case LSA_STATUS_UNSUPPORTED_VERSION:
            return -EPROTONOSUPPORT;
        case LSA_STATUS_INTERNAL_ERROR:
            return -EBUSY;
        default:
            return -EPROTO;
    }
}

/* ---- connect ------------------------------------------------------------------------------- */

static int connect_with_deadline(int fd, const struct sockaddr_un* sa, int64_t deadline) {
    for (;;) {
        if (connect(fd, (const struct sockaddr*)sa, sizeof *sa) == 0) return 0;
        int err = errno;
        if (err == EINTR) continue;
        if (err == EISCONN) return 0;
        if (err == EINPROGRESS) {
            int r = wait_fd(fd, POLLOUT, deadline);
            if (r < 0) return r;
            int so_error = 0;
            socklen_t len = sizeof so_error;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) < 0) return -errno;
            return -so_error;
        }
        if (err == EAGAIN) {
            /* Unix sockets report a full listen backlog as EAGAIN: retry until the deadline. */
            int left = ms_left(deadline);
            if (left == 0) return -ETIMEDOUT;
            poll(NULL, 0, left < 10 ? left : 10);
            continue;
        }
        return -err;
    }
}

static int check_peer_uid(int fd, long expected_uid) {
    if (expected_uid < 0) return 0;
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return -errno;
    return (long)cred.uid == expected_uid ? 0 : -EPERM;
}

static int negotiate(lsa_client* c, int64_t deadline) {
    unsigned char* p = put_header(c->tx, T_HELLO, 2);
    p[0] = LSA_PROTOCOL_VERSION;
    p[1] = LSA_PROTOCOL_VERSION;
    struct frame f;
    int r = transact(c, HEADER + 2, deadline, &f);
    if (r < 0) return r;
    if (f.type == T_ERROR) {
        int code = take_error(c, &f);
        return code < 0 ? code : error_code_to_errno(code);
    }
    if (f.type != T_HELLO_OK || f.len != 11 || f.body[0] != LSA_PROTOCOL_VERSION) return -EPROTO;
    c->server_max_frame = get_u32(f.body + 3);
    c->server_max_token = get_u32(f.body + 7);
    return 0;
}

int lsa_connect(const lsa_options* opts, lsa_client** out) {
    if (out == NULL) return -EINVAL;
    *out = NULL;
    const char* path =
        (opts != NULL && opts->socket_path != NULL) ? opts->socket_path : LSA_DEFAULT_SOCKET;
    int timeout_ms = opts != NULL ? opts->timeout_ms : 0;
    long expected_uid = opts != NULL ? opts->expected_agent_uid : -1;
    if (timeout_ms < 0 || path[0] == '\0') return -EINVAL;
    if (timeout_ms == 0) timeout_ms = LSA_DEFAULT_TIMEOUT_MS;

    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t path_len = strlen(path);
    if (path_len >= sizeof sa.sun_path) return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, path_len + 1);

    lsa_client* c = calloc(1, sizeof *c);
    if (c == NULL) return -ENOMEM;
    c->timeout_ms = timeout_ms;
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        int err = -errno;
        free(c);
        return err;
    }
    int64_t deadline = deadline_after(timeout_ms);
    int r = connect_with_deadline(c->fd, &sa, deadline);
    if (r == 0) r = check_peer_uid(c->fd, expected_uid);
    if (r == 0) r = negotiate(c, deadline);
    if (r < 0) {
        lsa_close(c);
        return r;
    }
    *out = c;
    return 0;
}

void lsa_close(lsa_client* c) {
    if (c == NULL) return;
    if (c->fd >= 0) close(c->fd);
    free(c);
}

/* ---- validate ------------------------------------------------------------------------------ */

static int random_nonce(unsigned char* nonce) {
    size_t off = 0;
    while (off < NONCE) {
        ssize_t n = getrandom(nonce + off, NONCE - off, 0);
        if (n > 0) {
            off += (size_t)n;
        } else if (n < 0 && errno != EINTR) {
            return -errno;
        }
    }
    return 0;
}

/* Reads RESULT fields front to back; every take checks the bounds first. */
struct cursor {
    const unsigned char* p;
    size_t left;
    char* arena;
    size_t arena_left;
};

static int take_u16(struct cursor* cur, unsigned* v) {
    if (cur->left < 2) return -EPROTO;
    *v = get_u16(cur->p);
    cur->p += 2;
    cur->left -= 2;
    return 0;
}

/* Takes a u16-prefixed string and returns a NUL-terminated copy in the arena. */
static int take_string(struct cursor* cur, const char** out) {
    unsigned len;
    int r = take_u16(cur, &len);
    if (r < 0) return r;
    if (cur->left < len) return -EPROTO;
    if (cur->arena_left < (size_t)len + 1) return -EMSGSIZE;
    memcpy(cur->arena, cur->p, len);
    cur->arena[len] = '\0';
    *out = cur->arena;
    cur->arena += len + 1;
    cur->arena_left -= (size_t)len + 1;
    cur->p += len;
    cur->left -= len;
    return 0;
}

static void set_names(lsa_result* out) {
    out->status_name = lsa_status_string(out->status);
    out->lic_type_name = lsa_lic_type_string(out->lic_type);
}

static int parse_result(lsa_client* c, const struct frame* f, const unsigned char* nonce,
                        lsa_result* out) {
    if (f->len < RESULT_FIXED) return -EPROTO;
    if (memcmp(f->body, nonce, NONCE) != 0) return -EPROTO;
    const unsigned char* b = f->body + NONCE;
    unsigned flags = b[3];
    out->status = b[0];
    out->lic_type = b[1];
    out->kind = b[2];
    out->has_claims = (flags & FLAG_HAS_CLAIMS) != 0;
    out->has_expiry = out->has_claims && (flags & FLAG_HAS_EXP) != 0;
    out->expires_at = get_i64(b + 4);
    out->issued_at = get_i64(b + 12);

    struct cursor cur = {f->body + RESULT_FIXED, f->len - RESULT_FIXED, c->arena, sizeof c->arena};
    int r;
    if ((r = take_string(&cur, &out->license_id)) < 0) return r;
    if ((r = take_string(&cur, &out->product)) < 0) return r;
    if ((r = take_string(&cur, &out->subject)) < 0) return r;
    unsigned n;
    if ((r = take_u16(&cur, &n)) < 0) return r;
    if (n > LSA_MAX_FEATURES) return -EMSGSIZE;
    for (unsigned i = 0; i < n; ++i) {
        if ((r = take_string(&cur, &c->features[i])) < 0) return r;
    }
    out->feature_count = n;
    out->features = c->features;
    if ((r = take_u16(&cur, &n)) < 0) return r;
    if (n > LSA_MAX_META) return -EMSGSIZE;
    for (unsigned i = 0; i < n; ++i) {
        if ((r = take_string(&cur, &c->meta[i].key)) < 0) return r;
        if ((r = take_string(&cur, &c->meta[i].value)) < 0) return r;
    }
    out->meta_count = n;
    out->meta = c->meta;
    if (cur.left != 0) return -EPROTO;
    set_names(out);
    return 0;
}

/* Leaves `out` saying "not valid" so a caller that ignores the return value fails closed. */
static void reset_result(lsa_result* out) {
    memset(out, 0, sizeof *out);
    out->status = LSA_STATUS_INTERNAL_ERROR;
    out->license_id = out->product = out->subject = "";
    set_names(out);
}

int lsa_validate(lsa_client* c, const char* token, size_t token_len, const char* product,
                 const char* feature, const char* instance, lsa_result* out) {
    if (out == NULL) return -EINVAL;
    reset_result(out);
    if (c == NULL || (token == NULL && token_len > 0)) return -EINVAL;
    if (c->broken) return -ENOTCONN;
    const char* fields[3] = {product ? product : "", feature ? feature : "",
                             instance ? instance : ""};
    size_t lens[3];
    size_t body = NONCE + 8 + token_len;
    for (int i = 0; i < 3; ++i) {
        lens[i] = strlen(fields[i]);
        if (lens[i] > 0xFFFF) return -EMSGSIZE;
        body += lens[i];
    }
    if (token_len > 0xFFFF || body > MAX_BODY) return -EMSGSIZE;

    unsigned char nonce[NONCE];
    int r = random_nonce(nonce);
    if (r < 0) return r;
    unsigned char* p = put_header(c->tx, T_VALIDATE, body);
    p = put_bytes(p, nonce, NONCE);
    p = put_u16(p, token_len);
    for (int i = 0; i < 3; ++i) p = put_u16(p, lens[i]);
    p = put_bytes(p, token, token_len);
    for (int i = 0; i < 3; ++i) p = put_bytes(p, fields[i], lens[i]);

    struct frame f;
    r = transact(c, HEADER + body, deadline_after(c->timeout_ms), &f);
    if (r < 0) return r;
    if (f.type == T_ERROR) {
        int code = take_error(c, &f);
        if (code < 0) {
            c->broken = 1;
            return code;
        }
        out->status = code;
        out->error_message = c->error_message;
        set_names(out);
        return 0;
    }
    if (f.type != T_RESULT) {
        c->broken = 1;
        return -EPROTO;
    }
    r = parse_result(c, &f, nonce, out);
    if (r < 0) {
        /* Too many features/meta is our limit, not a broken stream: the frame was consumed. */
        if (r != -EMSGSIZE) c->broken = 1;
        reset_result(out);
    }
    return r;
}

/* ---- status -------------------------------------------------------------------------------- */

int lsa_status(lsa_client* c, char* json_out, size_t cap) {
    if (c == NULL || (json_out == NULL && cap > 0)) return -EINVAL;
    put_header(c->tx, T_STATUS, 0);
    struct frame f;
    int r = transact(c, HEADER, deadline_after(c->timeout_ms), &f);
    if (r < 0) return r;
    if (f.type == T_ERROR) {
        int code = take_error(c, &f);
        if (code < 0) c->broken = 1;
        return code < 0 ? code : error_code_to_errno(code);
    }
    if (f.type != T_STATUS_OK) {
        c->broken = 1;
        return -EPROTO;
    }
    if (f.len + 1 > cap) return -ERANGE;
    memcpy(json_out, f.body, f.len);
    json_out[f.len] = '\0';
    return (int)f.len;
}

const char* lsa_last_error(const lsa_client* c) {
    return (c != NULL && c->has_error) ? c->error_message : NULL;
}

/* ---- names --------------------------------------------------------------------------------- */

const char* lsa_status_string(int status) {
    static const char* const names[] = {
        "valid",          "expired",
        "not_yet_valid",  "bad_signature",
        "unknown_key",    "unsupported_alg",
        "malformed",      "too_large",
        "wrong_issuer",   "wrong_product",
        "wrong_instance", "feature_not_granted",
        "unauthorized",   "unsupported_version",
        "internal_error", "secret_expired",
        "secret_invalidated",
    };
    if (status < 0 || (size_t)status >= sizeof names / sizeof names[0]) return "unknown";
    return names[status];
}

const char* lsa_lic_type_string(int lic_type) {
    switch (lic_type) {
        case LSA_LIC_PERPETUAL:
            return "perpetual";
        case LSA_LIC_SUBSCRIPTION:
            return "subscription";
        case LSA_LIC_DEMO:
            return "demo";
        default:
            return "unknown";
    }
}

const char* lsa_kind_string(int kind) {
    switch (kind) {
        case LSA_KIND_SIGNED:
            return "signed";
        case LSA_KIND_SEALED:
            return "sealed";
        default:
            return "unknown";
    }
}

const char* lsa_strerror(int negative_errno) {
    switch (-negative_errno) {
        case 0:
            return "success";
        case EINVAL:
            return "invalid argument";
        case ENOMEM:
            return "out of memory";
        case ENAMETOOLONG:
            return "socket path too long";
        case ENOENT:
            return "agent socket not found (is license-agent running?)";
        case ECONNREFUSED:
            return "agent is not accepting connections (is license-agent running?)";
        case EACCES:
            return "permission denied (socket permissions, or the agent refused this user)";
        case EPERM:
            return "the socket's peer is not the expected agent user";
        case ETIMEDOUT:
            return "timed out waiting for the agent";
        case EPROTONOSUPPORT:
            return "the agent speaks no protocol version this client knows";
        case EPROTO:
            return "protocol error (unexpected, malformed or mismatched answer)";
        case EMSGSIZE:
            return "message exceeds the protocol or client limits";
        case ECONNRESET:
            return "the agent closed the connection";
        case EPIPE:
            return "the agent closed the connection";
        case ENOTCONN:
            return "connection unusable after an earlier failure; reconnect";
        case EBUSY:
            return "the agent is busy or failed internally";
        case ERANGE:
            return "output buffer too small";
        default:
            return "system error";
    }
}
