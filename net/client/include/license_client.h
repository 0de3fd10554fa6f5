/* license_client.h: C client for the License Secret Agent (wire protocol v1, docs/protocol.md).
 *
 * Plain C11 API for POS applications in any language (C, C++, Python via ctypes, ...).
 * Link with `pkg-config --cflags --libs license-client` (shared) or `--static` (static; the
 * static library needs only libc).
 *
 * Thread: an lsa_client is not thread-safe; use one client per thread, or serialise calls.
 * Different clients may be used concurrently from different threads.
 * Errors: functions return 0 (or a length) on success and a negative errno on failure;
 * lsa_strerror() turns that into a message. After a transport or protocol failure (timeout,
 * truncated answer, nonce mismatch, ...) the connection is unusable: further calls return
 * -ENOTCONN; close the client and connect again.
 */
#ifndef LICENSE_CLIENT_H
#define LICENSE_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define LSA_API __attribute__((visibility("default")))
#else
#define LSA_API
#endif

/** Wire protocol version spoken by this library. */
#define LSA_PROTOCOL_VERSION 1
/** Default socket of the agent (validation). */
#define LSA_DEFAULT_SOCKET "/run/license-agent/agent.sock"
/** Default admin socket of the agent (status and management). */
#define LSA_DEFAULT_ADMIN_SOCKET "/run/license-agent/admin.sock"
/** Per-call timeout used when lsa_options.timeout_ms is 0. */
#define LSA_DEFAULT_TIMEOUT_MS 5000
/** Most features one result can carry; more → lsa_validate returns -EMSGSIZE. */
#define LSA_MAX_FEATURES 64
/** Most metadata entries one result can carry; more → lsa_validate returns -EMSGSIZE. */
#define LSA_MAX_META 32
/** Largest token the agent accepts (longer ones are answered LSA_STATUS_TOO_LARGE). */
#define LSA_MAX_TOKEN 8192

/** Validation statuses (same numbers as on the wire). Unknown numbers mean "not valid". */
enum lsa_status_code {
    LSA_STATUS_VALID = 0,
    LSA_STATUS_EXPIRED = 1,
    LSA_STATUS_NOT_YET_VALID = 2,
    LSA_STATUS_BAD_SIGNATURE = 3,
    LSA_STATUS_UNKNOWN_KEY = 4,
    LSA_STATUS_UNSUPPORTED_ALG = 5,
    LSA_STATUS_MALFORMED = 6,
    LSA_STATUS_TOO_LARGE = 7,
    LSA_STATUS_WRONG_ISSUER = 8,
    LSA_STATUS_WRONG_PRODUCT = 9,
    LSA_STATUS_WRONG_INSTANCE = 10,
    LSA_STATUS_FEATURE_NOT_GRANTED = 11,
    LSA_STATUS_UNAUTHORIZED = 12,
    LSA_STATUS_UNSUPPORTED_VERSION = 13,
    LSA_STATUS_INTERNAL_ERROR = 14,
    LSA_STATUS_SECRET_EXPIRED = 15,    /* sealed under a secret past its grace period */
    LSA_STATUS_SECRET_INVALIDATED = 16 /* sealed under an invalidated secret */
};

/** License types. */
enum lsa_lic_type {
    LSA_LIC_UNKNOWN = 0,
    LSA_LIC_PERPETUAL = 1,
    LSA_LIC_SUBSCRIPTION = 2,
    LSA_LIC_DEMO = 3
};

/** Token kinds. */
enum lsa_token_kind {
    LSA_KIND_UNKNOWN = 0,
    LSA_KIND_SIGNED = 1, /* JWS EdDSA */
    LSA_KIND_SEALED = 2  /* JWE dir + A256GCM */
};

/** A connection to the agent. Opaque; owned by the caller until lsa_close. */
typedef struct lsa_client lsa_client;

/** Connection options; zero-initialise, then set what you need. */
typedef struct lsa_options {
    const char* socket_path; /* NULL = LSA_DEFAULT_SOCKET */
    int timeout_ms;          /* per call (connect, validate, status); 0 = LSA_DEFAULT_TIMEOUT_MS */
    long expected_agent_uid; /* uid the socket's peer must run as; -1 = don't check */
} lsa_options;

/** One metadata entry of a license. */
typedef struct {
    const char* key;
    const char* value;
} lsa_meta;

/** The agent's answer to one validation. Every pointer points into memory owned by the client
 *  (NUL-terminated copies), valid until the next call on that client or lsa_close. */
typedef struct lsa_result {
    int status;                /* enum lsa_status_code; only LSA_STATUS_VALID means valid */
    const char* status_name;   /* lsa_status_string(status) */
    int lic_type;              /* enum lsa_lic_type */
    const char* lic_type_name; /* "unknown", "perpetual", "subscription", "demo" */
    int kind;                  /* enum lsa_token_kind */
    int has_claims;            /* 1 when the license fields below are meaningful */
    int has_expiry;            /* 1 when expires_at is meaningful */
    int64_t expires_at;        /* seconds since the Unix epoch, UTC */
    int64_t issued_at;         /* seconds since the Unix epoch, UTC */
    const char* license_id;    /* "" when !has_claims */
    const char* product;       /* "" when !has_claims */
    const char* subject;       /* "" when !has_claims */
    size_t feature_count;
    const char* const* features; /* feature_count strings */
    size_t meta_count;
    const lsa_meta* meta;      /* meta_count entries */
    const char* error_message; /* NULL, or the agent's message when it answered an ERROR frame */
} lsa_result;

/** Connects to the agent, checks its uid when asked, and negotiates the protocol version.
 *  opts may be NULL (all defaults). On success *out is a new client; free it with lsa_close.
 *  Errors: -EINVAL (bad argument), -ENAMETOOLONG (path too long), -ENOENT / -ECONNREFUSED (agent
 *  not running), -EACCES (socket permissions, or the agent refused this user), -EPERM (peer uid !=
 *  expected_agent_uid), -ETIMEDOUT, -EPROTONOSUPPORT (no common protocol version), -EPROTO,
 *  -ENOMEM, or another negative errno from socket(2)/connect(2). */
LSA_API int lsa_connect(const lsa_options* opts, lsa_client** out);

/** Validates one token. product, feature and instance may be NULL (not checked by the agent).
 *  Returns 0 when the agent answered: out->status says whether the license is valid; when the
 *  agent answered with an ERROR frame (e.g. unauthorized), out->status is its code and
 *  out->error_message its message.
 *  Errors: -EINVAL, -EMSGSIZE (request does not fit one frame, or the answer exceeds
 *  LSA_MAX_FEATURES / LSA_MAX_META: nothing is truncated silently), -ETIMEDOUT, -EPROTO (bad or
 *  truncated answer, nonce mismatch), -ECONNRESET (agent closed the connection), -ENOTCONN
 *  (connection broken by an earlier failure), or another negative errno. */
LSA_API int lsa_validate(lsa_client* c, const char* token, size_t token_len, const char* product,
                         const char* feature, const char* instance, lsa_result* out);

/** Asks the agent for its counters: writes the JSON object, NUL-terminated, into json_out.
 *  Returns the JSON length (without NUL).
 *  Errors: -ERANGE (cap too small for the JSON and its NUL), -EACCES (the agent refused: see
 *  lsa_last_error), and the transport errors of lsa_validate. */
LSA_API int lsa_status(lsa_client* c, char* json_out, size_t cap);

/** The message of the last ERROR frame the agent sent on this client, or NULL. */
LSA_API const char* lsa_last_error(const lsa_client* c);

/** Name of a status: "valid", "expired", ..., "internal_error"; "unknown" otherwise. */
LSA_API const char* lsa_status_string(int status);

/** Name of a license type: "perpetual", "subscription", "demo"; "unknown" otherwise. */
LSA_API const char* lsa_lic_type_string(int lic_type);

/** Name of a token kind: "signed", "sealed"; "unknown" otherwise. */
LSA_API const char* lsa_kind_string(int kind);

/** Message for a negative errno returned by this library (static string, thread-safe). */
LSA_API const char* lsa_strerror(int negative_errno);

/** Closes the connection and frees the client. NULL is allowed. */
LSA_API void lsa_close(lsa_client* c);

#ifdef __cplusplus
}
#endif

#endif /* LICENSE_CLIENT_H */
