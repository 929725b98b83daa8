/* The exporter's three hot components in C. All are optional accelerators: when this module is not built
   (no compiler, no Python or libcrypto headers, CTSQS_NATIVE=0) or declines an input, the plain Python
   path decides (exporter.decode.delivery record by record, exporter.sinks.logs.encoding's Python encoder);
   tests/test_native*.py and tests/test_fastpath.py compare the two, with tests/reference.py as oracle.

   1. Scanner(derive, principals_of, parse_time): a `{"Records": [...]}` delivery → exporter.model.Call
      objects for its SQS API calls, without building the other records at all. It owns its tables of
      handed-out strings and key tuples and its caches of what the Python functions derived from them.
   2. LogEncoder(settings): one CloudTrail record → its OTLP log record, and a run of calls → export-batch
      chunks. It owns its redaction and batch settings, its buffers and its attribute caches.
   3. Tally(settings, callbacks): the metrics' per-call counting loop; it owns the tables it counts into
      (calls, batch entries, newest times, principals, lag histograms) and the slot cache. Its twin is
      exporter.sinks.metrics.tally.Tally.

   Module state (multi-phase init) holds exporter.model.Call with the offsets of its fields, the
   BoundedCache type and the three types. The only file-level tables are constants (written once at
   import: the key-name slot tables below, identical in every interpreter).

   --- The encoder: one CloudTrail record (JSON bytes) → the OTLP KeyValueList its log record body carries,
   in one pass.

   The pure-Python encoder (exporter/sinks/logs/wire.py + RecordEncoder.body) decodes the record into
   ~100 Python objects and encodes them again; this writes the same bytes straight from the JSON text. It is an
   accelerator only: for any input it does not handle exactly (malformed JSON, deep nesting, a lone
   surrogate, a float that overflows) it raises ValueError and the caller uses the Python encoder, so
   the two never disagree (tests/test_native.py checks byte equality).

   Wire format (opentelemetry/proto/common/v1/common.proto):
     KeyValueList.values = 1 (KeyValue)     KeyValue: key = 1 (string), value = 2 (AnyValue)
     AnyValue: string_value = 1, bool_value = 2, int_value = 3, double_value = 4,
               array_value = 5 (ArrayValue: values = 1), kvlist_value = 6
   JSON null is the empty AnyValue; an integer outside int64 is a string (as the Python encoder does).

   Redaction follows exporter.sinks.logs.redaction.Redactor: sourceIPAddress / userAgent at the top level,
   userIdentity.accessKeyId, and named keys anywhere inside requestParameters / responseElements;
   each is kept, dropped, or replaced by hasher(value) (value as str, or decoded by `decode`). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MAX_DEPTH 128

/* exporter.model.Call, read and built by field name: the offsets of its slots, found at import */
enum { C_LABELS, C_ERROR, C_ENTRIES, C_TIME, C_ROLE, C_ARN, C_QUEUE, C_EVENT_ID, NCALL };
static const char *CALL_FIELD[NCALL] = {"labels", "error", "entries", "time", "principal_role", "principal_arn",
                                        "queue", "event_id"};

typedef struct {
    PyObject *call_type;  /* exporter.model.Call */
    Py_ssize_t call_off[NCALL];
    PyObject *cache_type; /* exporter.cache.BoundedCache */
    PyObject *scanner_type, *encoder_type, *tally_type;
} State;

static inline State *state_of(PyObject *module) {
    return (State *)PyModule_GetState(module);
}

/* A field of a Call (borrowed), by its slot: a frozen Struct's slots are always set. */
static inline PyObject *call_field(const Py_ssize_t *off, PyObject *call, int f) {
    return *(PyObject **)((char *)call + off[f]);
}

enum { KEEP = 0, DROP = 1, HASH = 2 };
enum { CTX_NONE = 0, CTX_PARAMS = 1 };
/* values that also become LogRecord attributes, in the order the attributes are written */
enum { CAP_SOURCE_IP, CAP_USER_AGENT, CAP_READ_ONLY, CAP_IDENTITY_TYPE, CAP_REQUEST_ID, CAP_EVENT_ID, NCAP };
static const char *CAP_ATTR[NCAP] = {
    "client.address", "user_agent.original", "aws.cloudtrail.read_only", "aws.cloudtrail.user_identity.type",
    "aws.request_id", "aws.cloudtrail.event_id",
};

typedef struct {
    char *p;
    Py_ssize_t len, cap;
} Buf;

typedef struct {
    const unsigned char *s, *end, *start;
    Buf out;
    Buf tmp; /* scratch for unescaped strings that become Python objects */
    int act_ip, act_ua, act_key;
    PyObject *params;  /* tuple of (bytes name, int action) */
    PyObject *hasher;  /* callable(value) -> str, for values that are not strings */
    const struct Hasher *hs; /* strings are hashed here (the encoder's own) */
    PyObject *decode;  /* callable(bytes) -> object */
    Buf capv;          /* the AnyValue bytes of captured values */
    Py_ssize_t cap_off[NCAP], cap_len[NCAP];
    int pyerr;         /* a Python exception is set (not a parse failure) */
    int no_event_id;   /* the scanner skips eventID (nothing reads it: dedupe is off) */
    struct ScannerObject *sc; /* the scanner reading (its intern tables), or NULL */
} P;

static int grow_slow(Buf *b, Py_ssize_t need) {
    Py_ssize_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + need) cap *= 2;
    char *p = PyMem_Realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int grow(Buf *b, Py_ssize_t need) {
    return b->len + need <= b->cap ? 0 : grow_slow(b, need);
}

static inline int put(Buf *b, const void *d, Py_ssize_t n) {
    if (n <= 0) return 0; /* memcpy must not see a NULL buffer, even for 0 bytes */
    if (grow(b, n)) return -1;
    memcpy(b->p + b->len, d, n);
    b->len += n;
    return 0;
}

static inline int putc1(Buf *b, unsigned char c) {
    if (b->len >= b->cap && grow(b, 1)) return -1;
    b->p[b->len++] = (char)c;
    return 0;
}

static int put_varint(Buf *b, uint64_t v) {
    unsigned char t[10];
    int n = 0;
    while (v >= 0x80) {
        t[n++] = (unsigned char)((v & 0x7F) | 0x80);
        v >>= 7;
    }
    t[n++] = (unsigned char)v;
    return put(b, t, n);
}

static int varint_size(uint64_t v) {
    int n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* A length-delimited field: write the tag, reserve one length byte, write the payload, then close()
   fixes the length (moving the payload when the length needs more than one byte). */
static inline Py_ssize_t open_field(Buf *b, unsigned char tag) {
    if (grow(b, 2)) return -1;
    b->p[b->len++] = (char)tag;
    b->p[b->len++] = 0;
    return b->len;
}

static int close_long(Buf *b, Py_ssize_t at, uint64_t n);

static inline int close_field(Buf *b, Py_ssize_t at) {
    uint64_t n = (uint64_t)(b->len - at);
    if (n < 0x80) {
        b->p[at - 1] = (char)n;
        return 0;
    }
    return close_long(b, at, n);
}

static int close_long(Buf *b, Py_ssize_t at, uint64_t n) {
    int k = varint_size(n);
    if (grow(b, k - 1)) return -1;
    memmove(b->p + at + k - 1, b->p + at, (size_t)n);
    b->len += k - 1;
    unsigned char *q = (unsigned char *)b->p + at - 1;
    while (n >= 0x80) {
        *q++ = (unsigned char)((n & 0x7F) | 0x80);
        n >>= 7;
    }
    *q = (unsigned char)n;
    return 0;
}

static inline void skip_ws(P *ps) {
    /* one comparison for the usual case, no whitespace: JSON's four are all <= ' ' */
    while (ps->s < ps->end && *ps->s <= ' ' &&
           (*ps->s == ' ' || *ps->s == '\n' || *ps->s == '\r' || *ps->s == '\t'))
        ps->s++;
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(P *ps, uint32_t *out) {
    if (ps->end - ps->s < 4) return -1;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(ps->s[i]);
        if (h < 0) return -1;
        v = (v << 4) | (uint32_t)h;
    }
    ps->s += 4;
    *out = v;
    return 0;
}

/* Length of a valid UTF-8 sequence starting at p (strict: no overlongs, no surrogates), or 0. */
static int utf8_len(const unsigned char *p, const unsigned char *end) {
    unsigned char c = p[0];
    if (c >= 0xC2 && c <= 0xDF) {
        if (end - p >= 2 && (p[1] & 0xC0) == 0x80) return 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        if (end - p >= 3 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80) {
            if (c == 0xE0 && p[1] < 0xA0) return 0;
            if (c == 0xED && p[1] >= 0xA0) return 0;
            return 3;
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        if (end - p >= 4 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80) {
            if (c == 0xF0 && p[1] < 0x90) return 0;
            if (c == 0xF4 && p[1] >= 0x90) return 0;
            return 4;
        }
    }
    return 0;
}

/* Bytes a string run stops at: quote, backslash, control characters, and non-ASCII (validated). */
static const unsigned char STOP[256] = {[0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x80 ... 0xff] = 1};


/* The first byte at or after q that ends a plain run of a string (see STOP). */
static inline const unsigned char *plain_run(const unsigned char *q, const unsigned char *end) {
#if defined(__SSE2__)
    /* 16 bytes at a time: quote, backslash, <= 0x1F, or a high bit (non-ASCII) */
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), ctl = _mm_set1_epi8(0x1F);
    while (end - q >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)q);
        __m128i hit = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash));
        hit = _mm_or_si128(hit, _mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl));
        int mask = _mm_movemask_epi8(hit) | _mm_movemask_epi8(v);
        if (mask) return q + __builtin_ctz((unsigned)mask);
        q += 16;
    }
#endif
    while (end - q >= 4 && !(STOP[q[0]] | STOP[q[1]] | STOP[q[2]] | STOP[q[3]])) q += 4;
    while (q < end && !STOP[*q]) q++;
    return q;
}

/* plain_run that also appends the run to b: 16 bytes are stored at a time (the buffer keeps room for
   them) and the length then counts only the plain ones, so short strings cost no memcpy call. */
static inline const unsigned char *plain_copy(const unsigned char *q, const unsigned char *end, Buf *b) {
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), ctl = _mm_set1_epi8(0x1F);
    while (end - q >= 16) {
        if (grow(b, 16)) return NULL;
        __m128i v = _mm_loadu_si128((const __m128i *)q);
        _mm_storeu_si128((__m128i *)(b->p + b->len), v);
        __m128i hit = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash));
        hit = _mm_or_si128(hit, _mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl));
        int mask = _mm_movemask_epi8(hit) | _mm_movemask_epi8(v);
        if (mask) {
            int k = __builtin_ctz((unsigned)mask);
            b->len += k;
            return q + k;
        }
        b->len += 16;
        q += 16;
    }
#endif
    const unsigned char *r = q;
    while (r < end && !STOP[*r]) r++;
    return put(b, q, r - q) ? NULL : r;
}

/* The rest of a string from ps->s, a byte plain_run stopped at (see read_string). */
static int string_rest(P *ps, Buf *b) {
    for (;;) {
        if (ps->s >= ps->end) return -1;
        unsigned char c = *ps->s;
        if (c == '"') {
            ps->s++;
            return 0;
        }
        if (c < 0x20) return -1;
        if (c >= 0x80) {
            int n = utf8_len(ps->s, ps->end);
            if (!n) return -1;
            if (b && put(b, ps->s, n)) return -2;
            ps->s += n;
            goto plain;
        }
        /* backslash */
        ps->s++;
        if (ps->s >= ps->end) return -1;
        c = *ps->s++;
        unsigned char e;
        switch (c) {
            case '"': e = '"'; break;
            case '\\': e = '\\'; break;
            case '/': e = '/'; break;
            case 'b': e = '\b'; break;
            case 'f': e = '\f'; break;
            case 'n': e = '\n'; break;
            case 'r': e = '\r'; break;
            case 't': e = '\t'; break;
            case 'u': {
                uint32_t cp;
                if (read_hex4(ps, &cp)) return -1;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    uint32_t lo;
                    if (ps->end - ps->s < 6 || ps->s[0] != '\\' || ps->s[1] != 'u') return -1;
                    ps->s += 2;
                    if (read_hex4(ps, &lo) || lo < 0xDC00 || lo > 0xDFFF) return -1;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return -1;
                }
                unsigned char u[4];
                int n;
                if (cp < 0x80) {
                    u[0] = (unsigned char)cp;
                    n = 1;
                } else if (cp < 0x800) {
                    u[0] = (unsigned char)(0xC0 | (cp >> 6));
                    u[1] = (unsigned char)(0x80 | (cp & 0x3F));
                    n = 2;
                } else if (cp < 0x10000) {
                    u[0] = (unsigned char)(0xE0 | (cp >> 12));
                    u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                    u[2] = (unsigned char)(0x80 | (cp & 0x3F));
                    n = 3;
                } else {
                    u[0] = (unsigned char)(0xF0 | (cp >> 18));
                    u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
                    u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                    u[3] = (unsigned char)(0x80 | (cp & 0x3F));
                    n = 4;
                }
                if (b && put(b, u, n)) return -2;
                goto plain;
            }
            default:
                return -1;
        }
        if (b && putc1(b, e)) return -2;
    plain:
        if (b) {
            const unsigned char *q = plain_copy(ps->s, ps->end, b);
            if (!q) return -2;
            ps->s = q;
        } else {
            ps->s = plain_run(ps->s, ps->end);
        }
    }
}

/* The JSON string at ps->s (opening quote) unescaped as UTF-8 onto b (only validated when b is NULL).
   Inline for the common string, plain ASCII up to its closing quote; b is a constant at most call sites. */
static inline int read_string(P *ps, Buf *b) {
    if (ps->s >= ps->end || *ps->s != '"') return -1;
    /* callers take `b->p + mark` even for an empty string: the buffer must exist (NULL + 0 is undefined) */
    if (b && !b->p && grow_slow(b, 1)) return -2;
    const unsigned char *q = b ? plain_copy(ps->s + 1, ps->end, b) : plain_run(ps->s + 1, ps->end);
    if (!q) return -2;
    ps->s = q;
    if (q < ps->end && *q == '"') {
        ps->s++;
        return 0;
    }
    return string_rest(ps, b);
}

/* Skip one JSON value, validating it (used for spans handed to `decode`). */
static int skip_value(P *ps, int depth);
static inline int skip_any(P *ps, int depth);

static inline int skip_string(P *ps) {
    return read_string(ps, NULL); /* validated, not copied */
}

static int scan_number(P *ps, int *is_float) {
    const unsigned char *s = ps->s, *end = ps->end;
    *is_float = 0;
    if (s < end && *s == '-') s++;
    if (s >= end) return -1;
    if (*s == '0') {
        s++;
    } else if (*s >= '1' && *s <= '9') {
        while (s < end && *s >= '0' && *s <= '9') s++;
    } else {
        return -1;
    }
    if (s < end && *s == '.') {
        *is_float = 1;
        s++;
        if (s >= end || *s < '0' || *s > '9') return -1;
        while (s < end && *s >= '0' && *s <= '9') s++;
    }
    if (s < end && (*s == 'e' || *s == 'E')) {
        *is_float = 1;
        s++;
        if (s < end && (*s == '+' || *s == '-')) s++;
        if (s >= end || *s < '0' || *s > '9') return -1;
        while (s < end && *s >= '0' && *s <= '9') s++;
    }
    ps->s = s;
    return 0;
}

static int match_lit(P *ps, const char *lit, Py_ssize_t n) {
    if (ps->end - ps->s < n || memcmp(ps->s, lit, (size_t)n) != 0) return -1;
    ps->s += n;
    return 0;
}

/* After a member or element: 1 on ',' (more follow), 0 on `close` (consumed), -1 on anything else. */
static inline int next_item(P *ps, unsigned char close) {
    skip_ws(ps);
    if (ps->s >= ps->end) return -1;
    if (*ps->s == ',') {
        ps->s++;
        return 1;
    }
    if (*ps->s == close) {
        ps->s++;
        return 0;
    }
    return -1;
}

/* Past the opening bracket at ps->s: 1 when the container is empty (its `close` consumed too), else 0. */
static inline int open_container(P *ps, unsigned char close) {
    ps->s++;
    skip_ws(ps);
    if (ps->s < ps->end && *ps->s == close) {
        ps->s++;
        return 1;
    }
    return 0;
}

static int skip_value(P *ps, int depth) {
    if (depth > MAX_DEPTH) return -1;
    skip_ws(ps);
    if (ps->s >= ps->end) return -1;
    unsigned char c = *ps->s;
    int f;
    switch (c) {
        case '"': return skip_string(ps);
        case 't': return match_lit(ps, "true", 4);
        case 'f': return match_lit(ps, "false", 5);
        case 'n': return match_lit(ps, "null", 4);
        case '[':
            if (open_container(ps, ']')) return 0;
            for (;;) {
                int r = skip_any(ps, depth + 1);
                if (r) return r;
                int more = next_item(ps, ']');
                if (more <= 0) return more;
            }
        case '{':
            if (open_container(ps, '}')) return 0;
            for (;;) {
                skip_ws(ps);
                int r = skip_string(ps);
                if (r) return r;
                skip_ws(ps);
                if (ps->s >= ps->end || *ps->s != ':') return -1;
                ps->s++;
                r = skip_any(ps, depth + 1);
                if (r) return r;
                int more = next_item(ps, '}');
                if (more <= 0) return more;
            }
        default:
            return scan_number(ps, &f);
    }
}

/* skip_value without a call for the commonest value, a string: the call's prologue is a measurable part
   of skipping one. */
static inline int skip_any(P *ps, int depth) {
    skip_ws(ps);
    return ps->s < ps->end && *ps->s == '"' ? skip_string(ps) : skip_value(ps, depth);
}

/* The value at ps->s as a Python object: str for strings (unescaped), else decode(its JSON text). */
static PyObject *value_object(P *ps) {
    skip_ws(ps);
    if (ps->s < ps->end && *ps->s == '"') {
        Py_ssize_t mark = ps->tmp.len;
        int r = read_string(ps, &ps->tmp);
        if (r) {
            ps->tmp.len = mark;
            if (r == -2) ps->pyerr = 1;
            return NULL;
        }
        PyObject *o = PyUnicode_DecodeUTF8(ps->tmp.p + mark, ps->tmp.len - mark, "strict");
        ps->tmp.len = mark;
        if (!o) ps->pyerr = 1;
        return o;
    }
    const unsigned char *from = ps->s;
    int r = skip_value(ps, 0);
    if (r) {
        if (r == -2) ps->pyerr = 1;
        return NULL;
    }
    PyObject *text = PyBytes_FromStringAndSize((const char *)from, ps->s - from);
    if (!text) {
        ps->pyerr = 1;
        return NULL;
    }
    PyObject *o = PyObject_CallOneArg(ps->decode, text);
    Py_DECREF(text);
    if (!o) ps->pyerr = 1;
    return o;
}

static int enc_string_value(Buf *b, const char *d, Py_ssize_t n) {
    /* AnyValue{string_value} */
    if (putc1(b, 0x0a) || put_varint(b, (uint64_t)n) || put(b, d, n)) return -2;
    return 0;
}

/* Encode a Python value that replaced a redacted one (a str from hasher, or None). */
static int enc_pyvalue(P *ps, PyObject *v) {
    if (v == Py_None) return 0;
    if (!PyUnicode_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "hasher must return str");
        ps->pyerr = 1;
        return -2;
    }
    Py_ssize_t n;
    const char *d = PyUnicode_AsUTF8AndSize(v, &n);
    if (!d) {
        ps->pyerr = 1;
        return -2;
    }
    return enc_string_value(&ps->out, d, n);
}

/* The redaction digest, owned by a LogEncoder: SHA-256 contexts keyed once (after the HMAC key's inner and
   outer pads, RFC 2104), copied for each value. libcrypto's one-shot HMAC() / SHA256() look the digest up
   by name on every call (a lock and allocations in OpenSSL 3), which cost more than the hashing itself. */
typedef struct Hasher {
    EVP_MD_CTX *start; /* SHA-256 after the inner pad (HMAC), or fresh (plain SHA-256) */
    EVP_MD_CTX *outer; /* after the outer pad; NULL for plain SHA-256 */
    EVP_MD_CTX *work;
} Hasher;

static void hasher_free(Hasher *h) {
    EVP_MD_CTX_free(h->start);
    EVP_MD_CTX_free(h->outer);
    EVP_MD_CTX_free(h->work);
    memset(h, 0, sizeof(*h));
}

/* key: the HMAC key (at most a block: exporter.sinks.logs.redaction hashes a longer one first), or NULL */
static int hasher_init(Hasher *h, const unsigned char *key, Py_ssize_t keylen) {
    unsigned char pad[64];
    const EVP_MD *md = EVP_sha256(); /* fetched once, by the init below; the copies share it */
    h->start = EVP_MD_CTX_new();
    h->work = EVP_MD_CTX_new();
    int ok = h->start && h->work && keylen <= 64 && EVP_DigestInit_ex(h->start, md, NULL);
    if (ok && key) {
        h->outer = EVP_MD_CTX_new();
        ok = h->outer && EVP_DigestInit_ex(h->outer, md, NULL);
        for (int i = 0; i < 64; i++) pad[i] = (unsigned char)((i < keylen ? key[i] : 0) ^ 0x36);
        ok = ok && EVP_DigestUpdate(h->start, pad, 64);
        for (int i = 0; i < 64; i++) pad[i] = (unsigned char)((i < keylen ? key[i] : 0) ^ 0x5c);
        ok = ok && EVP_DigestUpdate(h->outer, pad, 64);
        OPENSSL_cleanse(pad, sizeof(pad));
    }
    if (!ok) {
        hasher_free(h);
        PyErr_SetString(PyExc_RuntimeError, "libcrypto: cannot set up SHA-256");
        return -1;
    }
    return 0;
}

/* `sha256:` + 32 hex digits of the (keyed) digest of d, onto b as an AnyValue string: the first 16 bytes of
   SHA-256(value), or of HMAC-SHA256(key, value), as exporter.sinks.logs.redaction.Redactor.hash writes it
   for a string. In C: a call back into Python's hashlib per value would cost more than the rest of a
   record's encoding. */
static int put_hashed(Buf *b, const Hasher *h, const char *d, Py_ssize_t n) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    int ok = EVP_MD_CTX_copy_ex(h->work, h->start) && EVP_DigestUpdate(h->work, d, (size_t)n) &&
             EVP_DigestFinal_ex(h->work, digest, &len);
    if (ok && h->outer)
        ok = EVP_MD_CTX_copy_ex(h->work, h->outer) && EVP_DigestUpdate(h->work, digest, len) &&
             EVP_DigestFinal_ex(h->work, digest, &len);
    if (!ok) return -2;
    static const char HEX[] = "0123456789abcdef";
    char text[39] = "sha256:";
    for (int i = 0; i < 16; i++) {
        text[7 + 2 * i] = HEX[digest[i] >> 4];
        text[8 + 2 * i] = HEX[digest[i] & 15];
    }
    return enc_string_value(b, text, 39);
}

static int enc_value(P *ps, int depth, int ctx);

/* The JSON string at ps->s as AnyValue.string_value (inline: the commonest value). */
static inline int enc_string(P *ps) {
    Buf *b = &ps->out;
    Py_ssize_t at = open_field(b, 0x0a);
    if (at < 0) return -2;
    int r = read_string(ps, b);
    if (r) return r;
    return close_field(b, at) ? -2 : 0;
}

/* An object's members as KeyValueList elements. `top`: the record itself; `ident`: userIdentity. */
#define MAX_KEYS 256

/* The n < 8 bytes at k as a little-endian integer (zero above them), from overlapping fixed-size loads:
   a variable-length memcpy into a stack word makes the next load wait for the stores (store forwarding
   fails), on the scanner's hottest path (key matching). */
static inline uint64_t load_short(const char *k, size_t n) {
    if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, k, 4);
        memcpy(&hi, k + n - 4, 4);
        return (uint64_t)lo | (uint64_t)hi << (8 * (n - 4)); /* the overlap holds the same bytes */
    }
    if (!n) return 0;
    const unsigned char *u = (const unsigned char *)k;
    return (uint64_t)u[0] | (uint64_t)u[n / 2] << (8 * (n / 2)) | (uint64_t)u[n - 1] << (8 * (n - 1));
}

/* A fingerprint of a key, equal for equal keys: exact for keys under 8 bytes (their bytes and length),
   a 64-bit mix of length, first and last 8 bytes otherwise (top bit set, so the two kinds never meet).
   Two different long keys with the same fingerprint only send the record to the Python encoder. */
static inline uint64_t key_hash(const char *k, Py_ssize_t n) {
    uint64_t a = 0, z = 0;
    if (n < 8) return load_short(k, (size_t)n) | ((uint64_t)n << 56);
    memcpy(&a, k, 8);
    memcpy(&z, k + n - 8, 8);
    uint64_t h = (a * 0x9E3779B97F4A7C15ULL) ^ (z * 0xC2B2AE3D27D4EB4FULL) ^ ((uint64_t)n * 0x165667B19E3779F9ULL);
    h ^= h >> 31;
    h *= 0xFF51AFD7ED558CCDULL;
    h ^= h >> 29;
    return h | (1ULL << 63);
}

static int enc_members(P *ps, int depth, int ctx, int top, int ident) {
    Buf *b = &ps->out;
    /* Python keeps the last of duplicate keys at the first one's place: leave such objects to it.
       (A hash collision between different keys only costs that fallback.) */
    uint64_t seen[MAX_KEYS], bloom = 0;
    int nseen = 0;
    /* at '{' */
    if (open_container(ps, '}')) return 0;
    for (;;) {
        skip_ws(ps);
        Py_ssize_t elem = open_field(b, 0x0a); /* KeyValueList.values */
        if (elem < 0) return -2;
        Py_ssize_t key = open_field(b, 0x0a); /* KeyValue.key */
        if (key < 0) return -2;
        int r = read_string(ps, b);
        if (r) return r;
        Py_ssize_t kn = b->len - key;
        if (close_field(b, key)) return -2;
        const char *k = b->p + b->len - kn; /* the key's bytes end the buffer (close_field may move them) */
        if (nseen == MAX_KEYS) return -1;
        uint64_t h = key_hash(k, kn), bit = 1ULL << ((h * 0x9E3779B97F4A7C15ULL) >> 58);
        if (bloom & bit)
            for (int i = 0; i < nseen; i++)
                if (seen[i] == h) return -1;
        bloom |= bit;
        seen[nseen++] = h;
        skip_ws(ps);
        if (ps->s >= ps->end || *ps->s != ':') return -1;
        ps->s++;
        skip_ws(ps);

        int action = KEEP, capture = -1, child_ctx = CTX_NONE, child_ident = 0;
        if (top) {
#define IS(lit) (kn == (Py_ssize_t)sizeof(lit) - 1 && memcmp(k, lit, sizeof(lit) - 1) == 0)
            if (IS("requestID")) capture = CAP_REQUEST_ID;
            else if (IS("eventID")) capture = CAP_EVENT_ID;
            else if (IS("sourceIPAddress")) { capture = CAP_SOURCE_IP; action = ps->act_ip; }
            else if (IS("userAgent")) { capture = CAP_USER_AGENT; action = ps->act_ua; }
            else if (IS("readOnly")) capture = CAP_READ_ONLY;
            else if (IS("userIdentity")) child_ident = 1;
            else if (IS("requestParameters") || IS("responseElements")) child_ctx = CTX_PARAMS;
        } else if (ident) {
            if (IS("accessKeyId")) action = ps->act_key;
            else if (IS("type")) capture = CAP_IDENTITY_TYPE;
#undef IS
        } else if (ctx == CTX_PARAMS) {
            Py_ssize_t np = PyTuple_GET_SIZE(ps->params);
            child_ctx = CTX_PARAMS;
            for (Py_ssize_t i = 0; i < np; i++) {
                PyObject *pair = PyTuple_GET_ITEM(ps->params, i);
                PyObject *name = PyTuple_GET_ITEM(pair, 0);
                if (PyBytes_GET_SIZE(name) == kn && memcmp(PyBytes_AS_STRING(name), k, (size_t)kn) == 0) {
                    action = (int)PyLong_AsLong(PyTuple_GET_ITEM(pair, 1));
                    break;
                }
            }
        }

        if (action == DROP) {
            b->len = elem - 2; /* forget the element */
            r = skip_value(ps, depth + 1);
            if (r) return r;
        } else {
            Py_ssize_t val = open_field(b, 0x12); /* KeyValue.value */
            if (val < 0) return -2;
            int is_null = ps->s < ps->end && *ps->s == 'n';
            if (action == HASH && ps->s < ps->end && *ps->s == '"') {
                Py_ssize_t mark = ps->tmp.len;
                r = read_string(ps, &ps->tmp);
                if (!r) r = put_hashed(b, ps->hs, ps->tmp.p + mark, ps->tmp.len - mark);
                ps->tmp.len = mark;
                if (r) return r;
            } else if (action == HASH && !is_null) {
                PyObject *v = value_object(ps);
                if (!v) return ps->pyerr ? -2 : -1;
                PyObject *h = PyObject_CallOneArg(ps->hasher, v);
                Py_DECREF(v);
                if (!h) {
                    ps->pyerr = 1;
                    return -2;
                }
                r = enc_pyvalue(ps, h);
                if (r) {
                    Py_DECREF(h);
                    return r;
                }
                Py_DECREF(h);
            } else if (child_ident && ps->s < ps->end && *ps->s == '{') {
                if (depth + 1 > MAX_DEPTH) return -1;
                Py_ssize_t kv = open_field(b, 0x32); /* AnyValue.kvlist_value */
                if (kv < 0) return -2;
                r = enc_members(ps, depth + 1, CTX_NONE, 0, 1);
                if (r) return r;
                if (close_field(b, kv)) return -2;
            } else {
                r = ps->s < ps->end && *ps->s == '"' ? enc_string(ps) : enc_value(ps, depth + 1, child_ctx);
                if (r) return r;
            }
            if (capture >= 0) { /* the attribute carries the same AnyValue as the body */
                ps->cap_off[capture] = ps->capv.len;
                ps->cap_len[capture] = b->len - val;
                if (put(&ps->capv, b->p + val, b->len - val)) return -2;
            }
            if (close_field(b, val)) return -2;
            if (close_field(b, elem)) return -2;
        }
        int more = next_item(ps, '}');
        if (more <= 0) return more;
    }
}

/* One JSON value as AnyValue fields (no tag or length of its own). */
static int enc_value(P *ps, int depth, int ctx) {
    Buf *b = &ps->out;
    if (depth > MAX_DEPTH) return -1;
    skip_ws(ps);
    if (ps->s >= ps->end) return -1;
    unsigned char c = *ps->s;
    switch (c) {
        case '"':
            return enc_string(ps);
        case 't':
            if (match_lit(ps, "true", 4)) return -1;
            return put(b, "\x10\x01", 2) ? -2 : 0;
        case 'f':
            if (match_lit(ps, "false", 5)) return -1;
            return put(b, "\x10\x00", 2) ? -2 : 0;
        case 'n':
            return match_lit(ps, "null", 4);
        case '{': {
            Py_ssize_t at = open_field(b, 0x32);
            if (at < 0) return -2;
            int r = enc_members(ps, depth, ctx, 0, 0);
            if (r) return r;
            return close_field(b, at) ? -2 : 0;
        }
        case '[': {
            Py_ssize_t at = open_field(b, 0x2a);
            if (at < 0) return -2;
            if (open_container(ps, ']')) return close_field(b, at) ? -2 : 0;
            for (;;) {
                Py_ssize_t el = open_field(b, 0x0a); /* ArrayValue.values */
                if (el < 0) return -2;
                int r = enc_value(ps, depth + 1, ctx);
                if (r) return r;
                if (close_field(b, el)) return -2;
                int more = next_item(ps, ']');
                if (more < 0) return -1;
                if (!more) break;
            }
            return close_field(b, at) ? -2 : 0;
        }
        default: {
            const unsigned char *from = ps->s;
            int is_float;
            if (scan_number(ps, &is_float)) return -1;
            Py_ssize_t n = ps->s - from;
            char num[64];
            if (is_float) {
                /* correctly rounded by CPython's dtoa; overflow is an error (as for msgspec) */
                char *heap = NULL, *text = num;
                if (n >= (Py_ssize_t)sizeof(num)) {
                    heap = PyMem_Malloc((size_t)n + 1);
                    if (!heap) return -2;
                    text = heap;
                }
                memcpy(text, from, (size_t)n);
                text[n] = 0;
                double d = PyOS_string_to_double(text, NULL, PyExc_OverflowError);
                PyMem_Free(heap);
                if (d == -1.0 && PyErr_Occurred()) {
                    PyErr_Clear();
                    return -1;
                }
                unsigned char t[9];
                t[0] = 0x21;
                memcpy(t + 1, &d, 8); /* little-endian hosts only: checked at import */
                return put(b, t, 9) ? -2 : 0;
            }
            /* integer: int64 as a varint, anything larger as its decimal text */
            int neg = from[0] == '-';
            const unsigned char *d = from + neg;
            uint64_t mag = 0;
            int big = 0;
            for (; d < ps->s; d++) {
                unsigned digit = (unsigned)(*d - '0');
                if (mag > (UINT64_MAX - digit) / 10) {
                    big = 1;
                    break;
                }
                mag = mag * 10 + digit;
            }
            if (!big && (neg ? mag > (uint64_t)INT64_MAX + 1 : mag > (uint64_t)INT64_MAX)) big = 1;
            if (big) return enc_string_value(b, (const char *)from, n);
            uint64_t v = neg ? (uint64_t)0 - mag : mag;
            if (putc1(b, 0x18)) return -2;
            return put_varint(b, v) ? -2 : 0;
        }
    }
}

/* The log encoder: its redaction and batch settings, read once from typed settings, its caches of
   attribute bytes (filled by exporter.sinks.logs.encoding on a miss) and its buffers. */
typedef struct {
    PyObject_HEAD
    int act_ip, act_ua, act_key;
    PyObject *params;   /* tuple of (bytes name, int action) */
    PyObject *hasher;   /* callable(value) -> str, for redacted values that are not strings */
    PyObject *hash_key; /* bytes (HMAC key) or None (plain SHA-256) */
    PyObject *decode;   /* callable(bytes) -> object */
    long long batch_records, batch_bytes;
    /* (labels, error, queue) → (attrs, head, tail, is_batch[, change function]); entries → bytes;
       principal → bytes */
    PyObject *kinds, *batch_sizes, *principals;
    PyObject *call_type;
    Py_ssize_t call_off[NCALL];
    /* Buffers kept between calls (fresh multi-KB buffers per record cost page faults and cache misses).
       Callbacks (hasher, decode) may let another thread in: a call that finds them taken uses its own. */
    Buf spare[3];
    int spare_busy;
    Hasher hasher_state; /* redacted strings' digests */
} EncoderObject;

static void take_buffers(EncoderObject *enc, P *ps, int *mine) {
    *mine = !enc->spare_busy;
    if (*mine) {
        enc->spare_busy = 1;
        ps->out = enc->spare[0];
        ps->tmp = enc->spare[1];
        ps->capv = enc->spare[2];
        ps->out.len = ps->tmp.len = ps->capv.len = 0;
    }
}

static void give_buffers(EncoderObject *enc, P *ps, int mine) {
    Buf *mine_bufs[3] = {&ps->out, &ps->tmp, &ps->capv};
    for (int i = 0; i < 3; i++) {
        Buf *b = mine_bufs[i];
        if (mine && b->cap <= (1 << 20)) { /* an odd huge record does not pin its buffer */
            enc->spare[i] = *b;
        } else {
            PyMem_Free(b->p);
            if (mine) enc->spare[i] = (Buf){NULL, 0, 0};
        }
    }
    if (mine) enc->spare_busy = 0;
}

/* A parser state with the encoder's redaction settings. */
static void settings_into(P *ps, const EncoderObject *enc) {
    memset(ps, 0, sizeof(*ps));
    ps->act_ip = enc->act_ip;
    ps->act_ua = enc->act_ua;
    ps->act_key = enc->act_key;
    ps->params = enc->params;
    ps->hasher = enc->hasher;
    ps->decode = enc->decode;
    ps->hs = &enc->hasher_state;
}

static int open_raw(P *ps, PyObject *obj, Py_buffer *raw) {
    if (PyObject_GetBuffer(obj, raw, PyBUF_SIMPLE) < 0) return -1;
    ps->start = ps->s = (const unsigned char *)raw->buf;
    ps->end = ps->s + raw->len;
    return 0;
}

/* The record's members onto ps->out, as KeyValueList elements. */
static int encode_members(P *ps) {
    skip_ws(ps);
    if (ps->s >= ps->end || *ps->s != '{') return -1;
    int r = enc_members(ps, 0, CTX_NONE, 1, 0);
    if (r) return r;
    skip_ws(ps);
    return ps->s == ps->end ? 0 : -1;
}

/* LogRecord.attributes (= 6) elements for the captured values that are not null, in CAP order. */
static int put_captured(P *ps, Buf *dst) {
    for (int i = 0; i < NCAP; i++) {
        if (ps->cap_len[i] <= 0) continue; /* absent, dropped, or null (the empty AnyValue) */
        Py_ssize_t el = open_field(dst, 0x32), at;
        size_t kn = strlen(CAP_ATTR[i]);
        if (el < 0 || putc1(dst, 0x0a) || put_varint(dst, kn) || put(dst, CAP_ATTR[i], (Py_ssize_t)kn) ||
            (at = open_field(dst, 0x12)) < 0 || put(dst, ps->capv.p + ps->cap_off[i], ps->cap_len[i]) ||
            close_field(dst, at) || close_field(dst, el))
            return -2;
    }
    return 0;
}

static void set_error(P *ps, int r) {
    if (ps->pyerr || PyErr_Occurred()) return;
    if (r == -2)
        PyErr_NoMemory();
    else
        PyErr_Format(PyExc_ValueError, "not a JSON object this encoder handles (at byte %zd)",
                     (Py_ssize_t)(ps->s - ps->start));
}

static PyObject *encoder_body(PyObject *self, PyObject *raw_obj) {
    EncoderObject *enc = (EncoderObject *)self;
    Py_buffer raw;
    P ps;
    settings_into(&ps, enc);
    if (open_raw(&ps, raw_obj, &raw)) return NULL;
    int mine;
    take_buffers(enc, &ps, &mine);
    int r = encode_members(&ps);
    PyBuffer_Release(&raw);
    PyObject *result = NULL;
    Buf attrs = {NULL, 0, 0};
    if (!r) r = put_captured(&ps, &attrs);
    if (!r) {
        PyObject *body = PyBytes_FromStringAndSize(ps.out.p ? ps.out.p : "", ps.out.len);
        PyObject *extra = PyBytes_FromStringAndSize(attrs.p ? attrs.p : "", attrs.len);
        if (body && extra) result = PyTuple_Pack(2, body, extra);
        Py_XDECREF(body);
        Py_XDECREF(extra);
    } else {
        set_error(&ps, r);
    }
    PyMem_Free(attrs.p);
    give_buffers(enc, &ps, mine);
    return result;
}

typedef struct {
    const char *p;
    Py_ssize_t n;
} Part;

/* What a LogRecord holds besides the record's own fields: its times, `head` the encoded severity fields,
   `attrs` the attributes that precede the captured ones and `tail` the event_name field. */
typedef struct {
    uint64_t t_ns, o_ns;
    Part head, tail, attrs[4];
    int nattrs;
} RecordParts;

/* The whole ScopeLogs.log_records (= 2) element onto ps->out (taken buffers, len 0), starting at *start:
   what otlp.RequestBuilder.record_field(otlp.log_record(time_ns, observed_ns, severity..., body,
   attributes, event_name)) writes. Releases raw. 0, or the encoder's error. */
static int record_into(P *ps, Py_buffer *raw, const RecordParts *rp, Py_ssize_t *start) {
    Part head = rp->head, tail = rp->tail;
    const Part *attrs = rp->attrs;
    int nattrs = rp->nattrs;
    uint64_t t = rp->t_ns, o = rp->o_ns;
    Buf *b = &ps->out;
    int r = 0;
    /* The members are written after a gap, and the record's, body's and kvlist's tags and lengths are
       written back into the gap once the lengths are known: no payload is moved to fit a length. */
    Py_ssize_t gap = 1 + 10 + 18 + head.n + 1 + 10 + 1 + 10;
    *start = 0;
    if (grow(b, gap)) r = -2;
    b->len = gap;
    if (!r) r = encode_members(ps);
    PyBuffer_Release(raw);
    Py_ssize_t kv_n = b->len - gap;
    for (int i = 0; i < nattrs && !r; i++)
        if (put(b, attrs[i].p, attrs[i].n)) r = -2;
    if (!r) r = put_captured(ps, b);
    if (!r && put(b, tail.p, tail.n)) r = -2;
    if (r) return r;
    Py_ssize_t after = b->len - gap - kv_n; /* attributes and event_name */
    Py_ssize_t body_n = 1 + varint_size((uint64_t)kv_n) + kv_n;
    Py_ssize_t rec_n = 18 + head.n + 1 + varint_size((uint64_t)body_n) + body_n + after;
    Py_ssize_t pre = 1 + varint_size((uint64_t)rec_n) + 18 + head.n + 1 + varint_size((uint64_t)body_n) + 1 +
                     varint_size((uint64_t)kv_n);
    *start = gap - pre;
    Buf w = {b->p, *start, b->cap}; /* writes the prefix in place, ending where the members begin */
    unsigned char fixed[9];
    putc1(&w, 0x12); /* ScopeLogs.log_records = 2 */
    put_varint(&w, (uint64_t)rec_n);
    fixed[0] = 0x09; /* time_unix_nano = 1, fixed64 little-endian (checked at import) */
    memcpy(fixed + 1, &t, 8);
    put(&w, fixed, 9);
    fixed[0] = 0x59; /* observed_time_unix_nano = 11 */
    memcpy(fixed + 1, &o, 8);
    put(&w, fixed, 9);
    put(&w, head.p, head.n);
    putc1(&w, 0x2a); /* body = 5 */
    put_varint(&w, (uint64_t)body_n);
    putc1(&w, 0x32); /* AnyValue.kvlist_value = 6 */
    put_varint(&w, (uint64_t)kv_n);
    return w.len == gap ? 0 : -2; /* (always equal: the arithmetic above is the layout) */
}

static Part part_of(PyObject *bytes) {
    return (Part){PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes)};
}

/* (head, attrs, tail): three bytes objects → parts; 0, or -1 with TypeError */
static int parts_of(PyObject *parts, Part out[3]) {
    if (!PyTuple_Check(parts) || PyTuple_GET_SIZE(parts) != 3) {
        PyErr_SetString(PyExc_TypeError, "parts is (head, attrs, tail)");
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        if (!PyBytes_Check(PyTuple_GET_ITEM(parts, i))) {
            PyErr_SetString(PyExc_TypeError, "head, attrs and tail must be bytes");
            return -1;
        }
        out[i] = part_of(PyTuple_GET_ITEM(parts, i));
    }
    return 0;
}

static PyObject *encoder_record(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    EncoderObject *enc = (EncoderObject *)self;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "record(raw, time_ns, observed_ns, (head, attrs, tail))");
        return NULL;
    }
    RecordParts rp;
    rp.t_ns = PyLong_AsUnsignedLongLong(args[1]);
    rp.o_ns = rp.t_ns == (unsigned long long)-1 && PyErr_Occurred() ? 0 : PyLong_AsUnsignedLongLong(args[2]);
    if (PyErr_Occurred()) return NULL;
    Part parts[3];
    if (parts_of(args[3], parts)) return NULL;
    rp.head = parts[0];
    rp.attrs[0] = parts[1];
    rp.nattrs = 1;
    rp.tail = parts[2];
    Py_buffer raw;
    P ps;
    settings_into(&ps, enc);
    if (open_raw(&ps, args[0], &raw)) return NULL;
    int mine;
    take_buffers(enc, &ps, &mine);
    Py_ssize_t start;
    int r = record_into(&ps, &raw, &rp, &start);
    PyObject *result = NULL;
    if (!r)
        result = PyBytes_FromStringAndSize(ps.out.p + start, ps.out.len - start);
    else
        set_error(&ps, r);
    give_buffers(enc, &ps, mine);
    return result;
}


/* ------------------------------------------------------------------------------------------------------
   The scanner: Scanner.rows(data, keep_raw)
       -> ([(dkey, ikey, errorCode, entries, eventTime, eventID, raw), ...], other) | None

   dkey = (recipientAccountId, awsRegion, eventName, eventCategory, managementEvent, queueUrl, queueName,
           sourceArn, (resources[].ARN, ...) | None)      everything the queue/category derivation reads
   ikey = (type, arn, principalId, accountId, userName, invokedBy, sessionContext.sessionIssuer.arn) | None
   entries = len(requestParameters.entries) (0 without), eventID as read (a new str each: it never repeats),
   raw = the record's JSON (bytes) when keep_raw.

   The types are SqsRecord's: a wrong type, a duplicate key among those read, a non-object record, or
   anything else unusual returns None and exporter.pipeline's general path decides, record by record.
   Other records are skipped after their eventSource / eventType (which must be strings or null). */

enum { F_SOURCE, F_NAME, F_TIME, F_TYPE, F_REGION, F_RECIPIENT, F_ERROR, F_CATEGORY, F_MGMT, F_IDENT, F_PARAMS,
       F_RESOURCES, F_EVENT_ID, NF };
static const char *FNAME[NF] = {"eventSource", "eventName", "eventTime", "eventType", "awsRegion",
                                "recipientAccountId", "errorCode", "eventCategory", "managementEvent",
                                "userIdentity", "requestParameters", "resources", "eventID"};

#define INTERN_SLOTS 16384
#define TUPLE_SLOTS 4096
#define ID_SLOTS 4096
#define SCANNER_CACHED 20000 /* entries per cache: a deployment has a few thousand queues × event names, callers */

/* Identity caches in front of the scanner's caches: key object → the value the cache held for it. An
   entry holds strong references to both, so its key cannot be freed and its address reused while it is
   there. Only values read from the caches (or computed from the key's text alone) go in: the same answers. */
typedef struct {
    PyObject *key, *val;
} IdEntry;

/* The scanner: its tables of handed-out strings and key tuples, its caches of what Python derived from
   them, and the Python functions that derive it on a miss. */
typedef struct ScannerObject {
    PyObject_HEAD
    PyObject *derive;        /* derive(dkey, ikey) -> (Labels, QueueRef, is_batch) */
    PyObject *principals_of; /* principals_of(ikey) -> (role, arn) */
    PyObject *parse_time;    /* parse_time(str) -> float | None */
    PyObject *derived, *principals; /* BoundedCache: dkey → derive's answer, ikey → principals_of's */
    PyObject *call_type;
    PyObject *raw_events; /* frozenset of event names whose raw JSON is kept without keep_raw; NULL: none */
    Py_ssize_t call_off[NCALL];
    PyObject *intern[INTERN_SLOTS];
    PyObject *tuples[TUPLE_SLOTS];
    IdEntry id_derived[ID_SLOTS], id_who[ID_SLOTS], id_time[ID_SLOTS];
} ScannerObject;

static inline uint64_t bytes_hash(const char *d, Py_ssize_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, d + i, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
    }
    if (i < n) {
        uint64_t w = load_short(d + i, (size_t)(n - i));
        h = (h ^ w) * 0xC4CEB9FE1A85EC53ULL;
        h ^= h >> 29;
    }
    return h;
}

/* A str for UTF-8 bytes. Short values repeat (accounts, regions, names, URLs, ARNs, times): the same
   object comes back, with its hash already computed, so the Python caches keyed by them stay cheap.
   Bounded: one object per slot. */
static PyObject *intern_str(ScannerObject *sc, const char *d, Py_ssize_t n) {
    if (n > 256) return PyUnicode_DecodeUTF8(d, n, "strict");
    PyObject **slot = &sc->intern[bytes_hash(d, n) & (INTERN_SLOTS - 1)];
    PyObject *o = *slot;
    if (o) {
        Py_ssize_t len;
        const char *u;
        if (PyUnicode_IS_COMPACT_ASCII(o)) { /* most are: their bytes are the UTF-8 */
            u = (const char *)PyUnicode_DATA(o);
            len = PyUnicode_GET_LENGTH(o);
        } else {
            u = PyUnicode_AsUTF8AndSize(o, &len);
        }
        if (u && len == n && memcmp(u, d, (size_t)n) == 0) return Py_NewRef(o);
        PyErr_Clear();
    }
    o = PyUnicode_DecodeUTF8(d, n, "strict");
    if (!o) return NULL;
    if (PyObject_Hash(o) == -1) {
        Py_DECREF(o);
        return NULL;
    }
    Py_XSETREF(*slot, Py_NewRef(o));
    return o;
}

/* str or null at ps->s → *out (new reference), interned when `keep`. -1: another type or bad JSON;
   -2: Python error. */
static int opt_str_as(P *ps, PyObject **out, int keep) {
    skip_ws(ps);
    if (ps->s < ps->end && *ps->s == 'n') {
        if (match_lit(ps, "null", 4)) return -1;
        *out = Py_NewRef(Py_None);
        return 0;
    }
    if (ps->s >= ps->end || *ps->s != '"') return -1;
    Py_ssize_t mark = ps->tmp.len;
    int r = read_string(ps, &ps->tmp);
    if (r) {
        ps->tmp.len = mark;
        return r;
    }
    const char *d = ps->tmp.p + mark;
    Py_ssize_t n = ps->tmp.len - mark;
    *out = keep ? intern_str(ps->sc, d, n) : PyUnicode_DecodeUTF8(d, n, "strict");
    ps->tmp.len = mark;
    return *out ? 0 : -2;
}

static inline int opt_str(P *ps, PyObject **out) {
    return opt_str_as(ps, out, 1);
}

/* The string (or null) at ps->s equals lit? 1 yes, 0 no (null or another string), -1 not a string/null. */
static int str_is(P *ps, const char *lit) {
    skip_ws(ps);
    if (ps->s < ps->end && *ps->s == 'n') return match_lit(ps, "null", 4) ? -1 : 0;
    if (ps->s >= ps->end || *ps->s != '"') return -1;
    Py_ssize_t mark = ps->tmp.len;
    int r = read_string(ps, &ps->tmp);
    int eq = !r && (size_t)(ps->tmp.len - mark) == strlen(lit) && memcmp(ps->tmp.p + mark, lit, strlen(lit)) == 0;
    ps->tmp.len = mark;
    return r ? -1 : eq;
}

/* Walk an object's members: for each key, `on_key` gets its index in `names` (or -1) with ps->s at the
   value, and must consume the value. A key read twice is refused (msgspec keeps the last; the general
   path decides). Returns 0, -1 (refuse) or -2 (Python error). */
typedef int (*member_fn)(P *ps, int field, void *ctx);

/* A set of key names, with each one's length and first 8 bytes for a cheap comparison, and a slot table
   from those to the name's index + 1 (0: no name there), filled at import with no two names in a slot. */
#define NAME_SLOTS 64
typedef struct {
    const char *const *names;
    int n;
    size_t len[16];
    uint64_t head[16];
    uint64_t mul; /* the slot is the top 6 bits of (head ^ len) * mul */
    unsigned char slot[NAME_SLOTS];
} Names;

static inline unsigned name_slot(const Names *t, uint64_t head, size_t n) {
    return (unsigned)(((head ^ (uint64_t)n) * t->mul) >> 58);
}

static inline uint64_t head8(const char *k, size_t n) {
    uint64_t h;
    if (n < 8) return load_short(k, n); /* k may be NULL when n is 0 */
    memcpy(&h, k, 8);
    return h;
}

static int names_init(Names *t) {
    for (int i = 0; i < t->n; i++) {
        t->len[i] = strlen(t->names[i]);
        t->head[i] = head8(t->names[i], t->len[i]);
    }
    /* the first odd multiplier that gives every name its own slot */
    for (uint64_t mul = 0x9E3779B97F4A7C15ULL, tries = 0; tries < 1000; mul += 0x5851F42D4C957F2EULL, tries++) {
        t->mul = mul | 1;
        memset(t->slot, 0, sizeof(t->slot));
        int i = 0;
        for (; i < t->n; i++) {
            unsigned char *slot = &t->slot[name_slot(t, t->head[i], t->len[i])];
            if (*slot) break;
            *slot = (unsigned char)(i + 1);
        }
        if (i == t->n) return 0;
    }
    return -1;
}

static int walk_object(P *ps, const Names *t, member_fn on_key, void *ctx, int depth) {
    if (depth > MAX_DEPTH) return -1;
    skip_ws(ps);
    if (ps->s >= ps->end || *ps->s != '{') return -1;
    if (open_container(ps, '}')) return 0;
    uint32_t seen = 0;
    for (;;) {
        skip_ws(ps);
        Py_ssize_t mark = ps->tmp.len;
        int r = read_string(ps, &ps->tmp);
        if (r) return r;
        size_t kn = (size_t)(ps->tmp.len - mark);
        const char *k = ps->tmp.p + mark;
        uint64_t kh = head8(k, kn);
        int field = t->slot[name_slot(t, kh, kn)] - 1;
        if (field >= 0 && !(t->len[field] == kn && t->head[field] == kh &&
                            (kn <= 8 || memcmp(k + 8, t->names[field] + 8, kn - 8) == 0)))
            field = -1;
        ps->tmp.len = mark;
        if (field >= 0) {
            if (seen & (1u << field)) return -1;
            seen |= 1u << field;
        }
        skip_ws(ps);
        if (ps->s >= ps->end || *ps->s != ':') return -1;
        ps->s++;
        skip_ws(ps);
        r = field >= 0 ? on_key(ps, field, ctx) : skip_any(ps, depth + 1);
        if (r) return r;
        int more = next_item(ps, '}');
        if (more <= 0) return more;
    }
}

/* userIdentity */
/* onBehalfOf is checked, not kept: its type must be what Identity declares (else the record is invalid), and
   principals_of declines the IdentityCenterUser callers that use it */
enum { I_TYPE, I_ARN, I_PRINCIPAL, I_ACCOUNT, I_USER, I_INVOKED, I_CONTEXT, NI, I_BEHALF = NI };
static const char *INAME[NI + 1] = {"type",      "arn",       "principalId",    "accountId",
                                    "userName",  "invokedBy", "sessionContext", "onBehalfOf"};
static const char *BEHALF_NAME[2] = {"userId", "identityStoreArn"};
static const char *ARN_NAME[1] = {"arn"};
static const char *ISSUER_NAME[1] = {"sessionIssuer"};
static const char *ENTRIES_NAMES[4] = {"queueUrl", "queueName", "sourceArn", "entries"};
static const char *RESOURCE_NAME[1] = {"ARN"};
static Names N_ARN = {ARN_NAME, 1, {0}, {0}}, N_ISSUER = {ISSUER_NAME, 1, {0}, {0}},
             N_PARAMS = {ENTRIES_NAMES, 4, {0}, {0}}, N_RESOURCE = {RESOURCE_NAME, 1, {0}, {0}},
             N_IDENT = {INAME, NI + 1, {0}, {0}}, N_BEHALF = {BEHALF_NAME, 2, {0}, {0}},
             N_TOP = {FNAME, NF, {0}, {0}};

typedef struct {
    PyObject *v[8];
    Py_ssize_t count;
} Fields;

static int null_or(P *ps, int *is_null) {
    skip_ws(ps);
    *is_null = ps->s < ps->end && *ps->s == 'n';
    return *is_null ? match_lit(ps, "null", 4) : 0;
}

static int on_arn(P *ps, int field, void *ctx) {
    (void)field;
    return opt_str(ps, &((Fields *)ctx)->v[0]);
}

static int on_issuer(P *ps, int field, void *ctx) {
    (void)field;
    int isnull;
    if (null_or(ps, &isnull)) return -1;
    return isnull ? 0 : walk_object(ps, &N_ARN, on_arn, ctx, 3);
}

static int on_behalf(P *ps, int field, void *ctx) {
    (void)field;
    (void)ctx;
    int isnull;
    if (null_or(ps, &isnull)) return -1;
    return isnull ? 0 : skip_string(ps); /* str or null, validated */
}

static int on_ident(P *ps, int field, void *ctx) {
    Fields *f = ctx;
    if (field == I_BEHALF) {
        int isnull;
        if (null_or(ps, &isnull)) return -1;
        return isnull ? 0 : walk_object(ps, &N_BEHALF, on_behalf, NULL, 2);
    }
    if (field != I_CONTEXT) return opt_str(ps, &f->v[field]);
    int isnull;
    if (null_or(ps, &isnull)) return -1;
    if (isnull) return 0;
    Fields issuer = {{NULL}, 0};
    int r = walk_object(ps, &N_ISSUER, on_issuer, &issuer, 2);
    f->v[I_CONTEXT] = issuer.v[0]; /* sessionContext.sessionIssuer.arn (NULL: none) */
    return r;
}

static int on_params(P *ps, int field, void *ctx) {
    Fields *f = ctx;
    if (field < 3) return opt_str(ps, &f->v[field]);
    /* entries: null or an array (of anything): its length */
    int isnull;
    if (null_or(ps, &isnull)) return -1;
    if (isnull) return 0;
    if (ps->s >= ps->end || *ps->s != '[') return -1;
    if (open_container(ps, ']')) return 0;
    for (;;) {
        int r = skip_value(ps, 3);
        if (r) return r;
        f->count++;
        int more = next_item(ps, ']');
        if (more <= 0) return more;
    }
}

static int on_resource(P *ps, int field, void *ctx) {
    (void)field;
    return opt_str(ps, (PyObject **)ctx);
}

/* resources: null → None; [null | {ARN: str|null}, ...] → tuple of the ARNs (None where absent) */
static PyObject *intern_tuple(ScannerObject *sc, PyObject **v, int n);

static int read_resources(P *ps, PyObject **out) {
    int isnull;
    if (null_or(ps, &isnull)) return -1;
    if (isnull) {
        *out = Py_NewRef(Py_None);
        return 0;
    }
    if (ps->s >= ps->end || *ps->s != '[') return -1;
    PyObject *list = PyList_New(0);
    if (!list) return -2;
    int r = 0;
    if (!open_container(ps, ']')) {
        for (;;) {
            PyObject *arn = NULL;
            skip_ws(ps);
            if (ps->s < ps->end && *ps->s == 'n') {
                r = match_lit(ps, "null", 4) ? -1 : 0;
            } else {
                r = walk_object(ps, &N_RESOURCE, on_resource, &arn, 2);
            }
            if (!r && PyList_Append(list, arn ? arn : Py_None)) r = -2;
            Py_XDECREF(arn);
            if (r) break;
            int more = next_item(ps, ']');
            if (more <= 0) {
                r = more;
                break;
            }
        }
    }
    if (!r) {
        Py_ssize_t n = PyList_GET_SIZE(list);
        PyObject *items[16];
        for (Py_ssize_t i = 0; i < n && i < 16; i++) items[i] = PyList_GET_ITEM(list, i);
        *out = n > 0 && n <= 16 ? intern_tuple(ps->sc, items, (int)n) : PyList_AsTuple(list);
    }
    Py_DECREF(list);
    if (!r && !*out) r = -2;
    return r;
}

static PyObject *tuple_of(PyObject **v, int n) {
    PyObject *t = PyTuple_New(n);
    if (!t) return NULL;
    for (int i = 0; i < n; i++) PyTuple_SET_ITEM(t, i, Py_NewRef(v[i] ? v[i] : Py_None));
    return t;
}

/* A tuple of these items: the one handed out before when it holds the very same objects, else a new one
   (remembered in a slot, replacing what was there). Repeated keys of the rows are then one object, which
   calls_of's identity caches recognise without hashing them. */
static PyObject *intern_tuple(ScannerObject *sc, PyObject **v, int n) {
    uint64_t h = (uint64_t)n * 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < n; i++) {
        h ^= (uint64_t)(uintptr_t)(v[i] ? v[i] : Py_None);
        h *= 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
    }
    PyObject **slot = &sc->tuples[h & (TUPLE_SLOTS - 1)];
    PyObject *t = *slot;
    if (t && PyTuple_GET_SIZE(t) == n) {
        int same = 1;
        for (int i = 0; i < n && same; i++) same = PyTuple_GET_ITEM(t, i) == (v[i] ? v[i] : Py_None);
        if (same) return Py_NewRef(t);
    }
    t = tuple_of(v, n);
    if (!t) return NULL;
    Py_XSETREF(*slot, Py_NewRef(t));
    return t;
}

/* One record being read. Fields after eventSource are read as they come when the record is an SQS
   call (and skipped when it is not); fields before it are remembered by position and read after. */
typedef struct {
    const unsigned char *at[NF];
    int sqs;      /* -1 not known yet, 0 no, 1 yes */
    int insight;  /* eventType is AwsCloudTrailInsight */
    PyObject *v[NF];
    Fields ident, params;
    int has_ident;
    PyObject *resources;
} Rec;

static void rec_clear(Rec *rc) {
    for (int i = 0; i < NF; i++) Py_CLEAR(rc->v[i]);
    for (int i = 0; i < 8; i++) {
        Py_CLEAR(rc->ident.v[i]);
        Py_CLEAR(rc->params.v[i]);
    }
    Py_CLEAR(rc->resources);
}

/* Read field f of an SQS record at ps->s into rc, with SqsRecord's types. */
static int read_field(P *ps, int f, Rec *rc) {
    if (f == F_MGMT) {
        if (match_lit(ps, "true", 4) == 0)
            rc->v[f] = Py_NewRef(Py_True);
        else if (match_lit(ps, "false", 5) == 0)
            rc->v[f] = Py_NewRef(Py_False);
        else if (match_lit(ps, "null", 4) != 0)
            return -1;
        return 0;
    }
    if (f == F_IDENT || f == F_PARAMS) {
        int isnull;
        if (null_or(ps, &isnull)) return -1;
        if (isnull) return 0;
        if (f == F_PARAMS) return walk_object(ps, &N_PARAMS, on_params, &rc->params, 1);
        rc->has_ident = 1;
        return walk_object(ps, &N_IDENT, on_ident, &rc->ident, 1);
    }
    if (f == F_RESOURCES) return read_resources(ps, &rc->resources);
    /* every eventID is unique: interning would only evict the values that do repeat; and each is a new
       str per call, so it is read only when asked for */
    if (f == F_EVENT_ID && ps->no_event_id) { /* still a string or null, as SqsRecord types it */
        int isnull;
        if (null_or(ps, &isnull)) return -1;
        return isnull ? 0 : skip_string(ps);
    }
    if (f == F_EVENT_ID) return opt_str_as(ps, &rc->v[f], 0);
    return opt_str(ps, &rc->v[f]);
}

static int on_top_field(P *ps, int field, void *ctx) {
    Rec *rc = ctx;
    if (field == F_SOURCE) {
        rc->sqs = str_is(ps, "sqs.amazonaws.com");
        return rc->sqs < 0 ? -1 : 0;
    }
    if (field == F_TYPE) { /* SqsRecord's eventType: a string or null on every record */
        rc->insight = str_is(ps, "AwsCloudTrailInsight");
        return rc->insight < 0 ? -1 : 0;
    }
    if (rc->sqs == 1) return read_field(ps, field, rc);
    rc->at[field] = ps->s;
    return skip_any(ps, 1);
}

/* The row of an SQS record whose fields are in rc (reading those found before eventSource); `raw` is
   the record's JSON when it is kept, else NULL. */
static int sqs_row(P *ps, Rec *rc, const Part *raw_text, PyObject **row) {
    int r = 0;
    for (int f = F_NAME; f < NF && !r; f++) {
        if (!rc->at[f]) continue;
        ps->s = rc->at[f];
        r = read_field(ps, f, rc);
    }
    if (r) return r;
    PyObject *d[9] = {rc->v[F_RECIPIENT], rc->v[F_REGION], rc->v[F_NAME], rc->v[F_CATEGORY], rc->v[F_MGMT],
                      rc->params.v[0],    rc->params.v[1], rc->params.v[2], rc->resources};
    PyObject *dkey = intern_tuple(ps->sc, d, 9);
    PyObject *ikey = rc->has_ident ? intern_tuple(ps->sc, rc->ident.v, NI) : Py_NewRef(Py_None);
    PyObject *raw = raw_text ? PyBytes_FromStringAndSize(raw_text->p, raw_text->n) : Py_NewRef(Py_None);
    PyObject *entries = PyLong_FromSsize_t(rc->params.count);
    if (dkey && ikey && raw && entries) {
        PyObject *row_v[7] = {dkey, ikey, rc->v[F_ERROR], entries, rc->v[F_TIME], rc->v[F_EVENT_ID], raw};
        *row = tuple_of(row_v, 7);
    }
    Py_XDECREF(entries);
    Py_XDECREF(dkey);
    Py_XDECREF(ikey);
    Py_XDECREF(raw);
    return *row ? 0 : -2;
}

/* Without keep_raw, the raw JSON of a call named in the scanner's raw_events still goes in its fresh row
   (its item 5, `raw`): the metrics read the request parameters of those rare calls. 0, or -2 on a Python
   error. */
static int keep_selected(ScannerObject *sc, PyObject *name, const Part *text, PyObject *row) {
    if (!name || !PyUnicode_CheckExact(name)) return 0;
    int in = PySet_Contains(sc->raw_events, name);
    if (in <= 0) return in < 0 ? -2 : 0;
    PyObject *raw = PyBytes_FromStringAndSize(text->p, text->n);
    if (!raw) return -2;
    PyObject *old = PyTuple_GET_ITEM(row, 6); /* the row's raw JSON item (after eventID) */
    PyTuple_SET_ITEM(row, 6, raw);
    Py_DECREF(old);
    return 0;
}

/* The Records array at ps->s: rows for SQS calls onto `rows`, the rest counted in *other. */
static int scan_records(P *ps, PyObject *rows, Py_ssize_t *other, int keep_raw) {
    if (ps->s >= ps->end || *ps->s != '[') return -1;
    if (open_container(ps, ']')) return 0;
    for (;;) {
        skip_ws(ps);
        const unsigned char *from = ps->s;
        Rec rc;
        memset(&rc, 0, sizeof(rc));
        rc.sqs = -1;
        int r = walk_object(ps, &N_TOP, on_top_field, &rc, 0);
        const unsigned char *to = ps->s;
        if (!r && rc.sqs == 1 && !rc.insight) {
            PyObject *row = NULL;
            Part text = {(const char *)from, to - from};
            r = sqs_row(ps, &rc, keep_raw ? &text : NULL, &row);
            if (!r && !keep_raw && ps->sc->raw_events) r = keep_selected(ps->sc, rc.v[F_NAME], &text, row);
            if (!r) {
                r = PyList_Append(rows, row) ? -2 : 0;
                Py_DECREF(row);
            }
        } else if (!r) {
            (*other)++;
        }
        rec_clear(&rc);
        if (r) return r;
        ps->s = to;
        int more = next_item(ps, ']');
        if (more <= 0) return more;
    }
}

static const char *TOP_NAME[1] = {"Records"};
static Names N_DOC = {TOP_NAME, 1, {0}, {0}};

typedef struct {
    PyObject *rows;
    Py_ssize_t other;
    int keep_raw, found;
} Top;

static int on_records(P *ps, int field, void *ctx) {
    (void)field;
    Top *t = ctx;
    t->found = 1;
    return scan_records(ps, t->rows, &t->other, t->keep_raw);
}

/* The rows of a delivery and its count of other records, or Py_None when declined. */
static PyObject *rows_of(ScannerObject *sc, PyObject *data_obj, int keep_raw, int event_ids, Py_ssize_t *other) {
    Py_buffer data;
    if (PyObject_GetBuffer(data_obj, &data, PyBUF_SIMPLE) < 0) return NULL;
    P ps;
    memset(&ps, 0, sizeof(ps));
    ps.sc = sc;
    ps.no_event_id = !event_ids;
    ps.start = ps.s = (const unsigned char *)data.buf;
    ps.end = ps.s + data.len;
    Top top = {PyList_New(0), 0, keep_raw, 0};
    int r = top.rows ? walk_object(&ps, &N_DOC, on_records, &top, 0) : -2;
    if (!r) {
        skip_ws(&ps);
        if (ps.s != ps.end || !top.found) r = -1;
    }
    PyBuffer_Release(&data);
    PyMem_Free(ps.tmp.p);
    if (!r) {
        *other = top.other;
        return top.rows;
    }
    Py_XDECREF(top.rows);
    if (r == -1) {
        PyErr_Clear(); /* declined: the general path decides */
        return Py_NewRef(Py_None);
    }
    if (!PyErr_Occurred()) PyErr_NoMemory();
    return NULL;
}

/* Rows → exporter.model.Call objects, with the scanner's caches in front of its Python functions
   (tests/reference.py holds the plain Python loop this is). */

/* eventTime in CloudTrail's own form, YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z, as epoch seconds: the float
   datetime.fromisoformat(value).timestamp() gives (an int count of microseconds over 10**6, correctly
   rounded; exact here while the count fits a double's 53 bits). 0: any other form, left to Python. */
static int iso_z_seconds(const char *s, Py_ssize_t n, double *out) {
    if (n < 20 || n > 27 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
        s[n - 1] != 'Z')
        return 0;
    static const int at[] = {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18};
    int v[14];
    for (int i = 0; i < 14; i++) {
        unsigned dgt = (unsigned)(s[at[i]] - '0');
        if (dgt > 9) return 0;
        v[i] = (int)dgt;
    }
    long long y = v[0] * 1000 + v[1] * 100 + v[2] * 10 + v[3];
    int mo = v[4] * 10 + v[5], d = v[6] * 10 + v[7], h = v[8] * 10 + v[9], mi = v[10] * 10 + v[11],
        sec = v[12] * 10 + v[13];
    long long us = 0;
    if (n > 20) { /* a fraction: '.', 1 to 6 digits, then 'Z' */
        if (s[19] != '.' || n == 21) return 0;
        long long scale = 100000;
        for (Py_ssize_t i = 20; i < n - 1; i++, scale /= 10) {
            unsigned dgt = (unsigned)(s[i] - '0');
            if (dgt > 9) return 0;
            us += dgt * scale;
        }
    }
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 || mi > 59 || sec > 59)
        return 0;
    /* days from 1970-01-01 (H. Hinnant's days_from_civil) */
    long long yy = y - (mo <= 2);
    long long era = yy / 400, yoe = yy - era * 400;
    long long doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long days = era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
    long long total = ((days * 86400 + h * 3600 + mi * 60 + sec) * 1000000) + us;
    if (total >= (1LL << 53) || total <= -(1LL << 53)) return 0;
    *out = (double)total / 1e6;
    return 1;
}

static inline IdEntry *id_entry(IdEntry *table, PyObject *key) {
    uint64_t x = (uint64_t)(uintptr_t)key * 0x9E3779B97F4A7C15ULL;
    return &table[(x >> 40) & (ID_SLOTS - 1)];
}

static void id_put(IdEntry *e, PyObject *key, PyObject *val) {
    PyObject *k = e->key, *v = e->val;
    e->key = Py_NewRef(key);
    e->val = Py_NewRef(val);
    Py_XDECREF(k);
    Py_XDECREF(v);
}

/* Whether a key is short enough to remember: hostile input must not fill memory (strings of a tuple,
   one level of nested tuples, at most 1 KiB in all). */
static int short_key(PyObject *key) {
    Py_ssize_t total = 0;
    if (!PyTuple_Check(key)) return 1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(key); i++) {
        PyObject *v = PyTuple_GET_ITEM(key, i);
        if (PyTuple_Check(v)) {
            for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(v); k++)
                if (PyUnicode_Check(PyTuple_GET_ITEM(v, k))) total += PyUnicode_GET_LENGTH(PyTuple_GET_ITEM(v, k)) + 8;
        } else if (PyUnicode_Check(v)) {
            total += PyUnicode_GET_LENGTH(v) + 3;
        }
    }
    return total <= 1024;
}

/* Could intern_str have handed out this str (at most 256 bytes of UTF-8)? Counted conservatively for
   non-ASCII text. */
static inline int interned_len(PyObject *s) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    return (PyUnicode_IS_COMPACT_ASCII(s) ? n : 4 * n) <= 256;
}

/* Is `key` made only of objects the scanner hands out again for the same text (interned strings, and
   tuples of them)? Only such keys go in an identity table: a key holding a longer string is a new
   object on every call, and would take a new slot each time (until the table is full) for no hit. */
static int stable_key(PyObject *key) {
    if (PyUnicode_Check(key)) return interned_len(key);
    if (!PyTuple_Check(key)) return 1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(key); i++) {
        PyObject *v = PyTuple_GET_ITEM(key, i);
        if (PyTuple_Check(v)) {
            for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(v); k++) {
                PyObject *w = PyTuple_GET_ITEM(v, k);
                if (PyUnicode_Check(w) && !interned_len(w)) return 0;
            }
        } else if (PyUnicode_Check(v) && !interned_len(v)) {
            return 0;
        }
    }
    return 1;
}

/* A cache of the scanner: its identity table, the BoundedCache behind it, and the function of a miss. */
typedef struct {
    IdEntry *ids;
    PyObject *cache, *fn;
} Memo;

/* The cached answer for key, or fn(key[, arg2]), remembered in the cache (BoundedCache.put) when `keep`. */
static PyObject *get_or_call(Memo m, PyObject *key, PyObject *arg2, int keep) {
    IdEntry *ids = m.ids;
    PyObject *cache = m.cache, *fn = m.fn;
    IdEntry *e = id_entry(ids, key);
    if (e->key == key) return Py_NewRef(e->val);
    PyObject *hit = PyDict_GetItemWithError(cache, key); /* borrowed */
    if (hit) {
        if (stable_key(key)) id_put(e, key, hit);
        return Py_NewRef(hit);
    }
    if (PyErr_Occurred()) return NULL;
    PyObject *made = arg2 ? PyObject_CallFunctionObjArgs(fn, key, arg2, NULL) : PyObject_CallOneArg(fn, key);
    if (made && keep && short_key(key)) {
        PyObject *r = PyObject_CallMethod(cache, "put", "OO", key, made);
        if (!r) Py_CLEAR(made);
        Py_XDECREF(r);
    }
    return made;
}

static PyObject *calls_of(ScannerObject *sc, PyObject *rows) {
    if (!PyList_Check(rows)) {
        PyErr_SetString(PyExc_TypeError, "rows must be a list");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(rows);
    PyObject *out = PyList_New(n);
    if (!out) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 7) {
            PyErr_SetString(PyExc_TypeError, "a row is a 7-tuple");
            goto fail;
        }
        PyObject *dkey = PyTuple_GET_ITEM(row, 0), *ikey = PyTuple_GET_ITEM(row, 1);
        PyObject *error = PyTuple_GET_ITEM(row, 2), *entries = PyTuple_GET_ITEM(row, 3);
        PyObject *etime = PyTuple_GET_ITEM(row, 4), *event_id = PyTuple_GET_ITEM(row, 5);
        /* without recipientAccountId the account may come from the caller: not a function of dkey alone */
        int named = PyTuple_Check(dkey) && PyTuple_GET_SIZE(dkey) > 0 && PyObject_IsTrue(PyTuple_GET_ITEM(dkey, 0)) > 0;
        PyObject *d = get_or_call((Memo){sc->id_derived, sc->derived, sc->derive}, dkey, ikey, named);
        if (!d) goto fail;
        PyObject *who = get_or_call((Memo){sc->id_who, sc->principals, sc->principals_of}, ikey, NULL, 1);
        if (!who) {
            Py_DECREF(d);
            goto fail;
        }
        PyObject *t = NULL;
        int etrue = PyObject_IsTrue(etime);
        double secs;
        Py_ssize_t tn;
        IdEntry *te = id_entry(sc->id_time, etime);
        const char *ts = NULL;
        if (te->key == etime) {
            t = Py_NewRef(te->val);
        } else if ((ts = PyUnicode_Check(etime) ? PyUnicode_AsUTF8AndSize(etime, &tn) : NULL) &&
                   iso_z_seconds(ts, tn, &secs)) {
            t = PyFloat_FromDouble(secs);
            if (!t) etrue = -1;
            else if (stable_key(etime)) id_put(te, etime, t);
        } else if (etrue > 0) {
            PyErr_Clear(); /* (a str that is not UTF-8 only takes the slow path) */
        }
        if (!t && !PyErr_Occurred() && etrue >= 0) t = PyObject_CallOneArg(sc->parse_time, etime);
        if (!t || !PyTuple_Check(d) || PyTuple_GET_SIZE(d) < 3 || !PyTuple_Check(who) || PyTuple_GET_SIZE(who) < 2) {
            if (t && !PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "derived / principals are tuples");
            Py_XDECREF(t);
            Py_DECREF(d);
            Py_DECREF(who);
            goto fail;
        }
        int err_true = PyObject_IsTrue(error), batch = PyObject_IsTrue(PyTuple_GET_ITEM(d, 2));
        if (err_true < 0 || batch < 0) {
            Py_DECREF(t);
            Py_DECREF(d);
            Py_DECREF(who);
            goto fail;
        }
        PyObject *zero = batch ? NULL : PyLong_FromLong(0);
        PyObject *call = NULL;
        if (batch || zero) {
            PyObject *f[NCALL];
            f[C_LABELS] = PyTuple_GET_ITEM(d, 0);
            f[C_ERROR] = err_true ? error : Py_None;
            f[C_ENTRIES] = batch ? entries : zero;
            f[C_TIME] = t;
            f[C_ROLE] = PyTuple_GET_ITEM(who, 0);
            f[C_ARN] = PyTuple_GET_ITEM(who, 1);
            f[C_QUEUE] = PyTuple_GET_ITEM(d, 1);
            f[C_EVENT_ID] = event_id;
            call = PyObject_Vectorcall(sc->call_type, f, NCALL, NULL);
        }
        Py_XDECREF(zero);
        Py_DECREF(t);
        Py_DECREF(d);
        Py_DECREF(who);
        if (!call) goto fail;
        PyList_SET_ITEM(out, i, call);
    }
    return out;
fail:
    Py_DECREF(out); /* the unset items are NULL, which list_dealloc skips */
    return NULL;
}

/* Records of one export batch, each copied once from the encoder's buffer into a bytearray sized for the
   rest of the batch (so it is allocated about once) and trimmed when sealed: no bytes object per record,
   no list of them to join, no second copy. A bytearray: a bytes object cannot be resized through the
   public C API. */
typedef struct {
    PyObject *ba;      /* NULL until the first record */
    Py_ssize_t len, cap, n; /* bytes written, allocated, records */
} Chunk;

static int chunk_put(Chunk *c, const char *p, Py_ssize_t n, Py_ssize_t hint) {
    if (c->len + n > c->cap) {
        Py_ssize_t cap = c->cap ? 2 * c->cap : hint;
        if (cap < c->len + n) cap = c->len + n;
        if (!c->ba) {
            if (!(c->ba = PyByteArray_FromStringAndSize(NULL, cap))) return -1;
        } else if (PyByteArray_Resize(c->ba, cap)) {
            return -1;
        }
        c->cap = cap;
    }
    memcpy(PyByteArray_AS_STRING(c->ba) + c->len, p, (size_t)n);
    c->len += n;
    c->n++;
    return 0;
}

/* Append (bytearray, records) to out and start an empty chunk. A bytearray trimmed by less than half keeps
   its allocation: one that would keep more than an eighth unused is copied to its size instead, so the
   queue's byte budget stays close to the memory it holds. */
static int chunk_seal(Chunk *c, PyObject *out) {
    if (!c->n) return 0;
    PyObject *ba = c->ba;
    Py_ssize_t len = c->len, cap = c->cap, n = c->n;
    *c = (Chunk){NULL, 0, 0, 0};
    if (len >= cap / 2 && cap - len > cap / 8) {
        PyObject *exact = PyByteArray_FromStringAndSize(PyByteArray_AS_STRING(ba), len);
        Py_DECREF(ba);
        if (!exact) return -1;
        ba = exact;
    } else if (PyByteArray_Resize(ba, len)) {
        Py_DECREF(ba);
        return -1;
    }
    PyObject *item = Py_BuildValue("(Nn)", ba, n); /* steals ba */
    if (!item) return -1;
    int r = PyList_Append(out, item);
    Py_DECREF(item);
    return r;
}

/* What encode() needs of one call besides its raw record: its time and the attribute parts cached for
   its kind, batch size and principal, and for a kind that carries a function (kinds[...][4], calls that may
   change a queue's policy or encryption) the attributes that function reads from the raw record.
   The parts point into `hold` (the kind) and `extra` (the function's answer), and the call and its raw
   record are held too, all released by the caller (call_parts_done) once the record is written: the
   function runs Python, which may evict the kind or change the lists they came from.
   1: found; 0: leave this call to Python; -1: a Python error. */
typedef struct {
    PyObject *call, *raw, *hold, *extra;
} PartRefs;

static void call_parts_done(PartRefs *refs) {
    Py_CLEAR(refs->call);
    Py_CLEAR(refs->raw);
    Py_CLEAR(refs->hold);
    Py_CLEAR(refs->extra);
}

static int call_parts(const EncoderObject *enc, PyObject *call, PyObject *raw, RecordParts *cp, PartRefs *refs) {
    refs->hold = refs->extra = NULL;
    refs->call = Py_NewRef(call);
    refs->raw = Py_NewRef(raw);
    if (Py_TYPE(call) != (PyTypeObject *)enc->call_type) goto leave;
    PyObject *labels = call_field(enc->call_off, call, C_LABELS), *error = call_field(enc->call_off, call, C_ERROR);
    PyObject *entries = call_field(enc->call_off, call, C_ENTRIES), *t = call_field(enc->call_off, call, C_TIME);
    PyObject *principal = call_field(enc->call_off, call, C_ARN), *queue = call_field(enc->call_off, call, C_QUEUE);
    cp->t_ns = 0;
    if (t != Py_None) {
        if (!PyFloat_CheckExact(t)) goto leave;
        double ns = PyFloat_AS_DOUBLE(t) * 1e9; /* int(t * 1e9): truncation, in range only */
        if (!(ns >= 0.0 && ns < 18446744073709551616.0)) goto leave;
        cp->t_ns = (uint64_t)ns;
    }
    PyObject *key = PyTuple_Pack(3, labels, error, queue);
    if (!key) goto fail;
    PyObject *kind = PyDict_GetItemWithError(enc->kinds, key); /* borrowed */
    Py_DECREF(key);
    if (!kind) goto missed;
    Py_ssize_t kn = PyTuple_Check(kind) ? PyTuple_GET_SIZE(kind) : 0;
    if ((kn != 4 && kn != 5) || !PyBytes_Check(PyTuple_GET_ITEM(kind, 0)) ||
        !PyBytes_Check(PyTuple_GET_ITEM(kind, 1)) || !PyBytes_Check(PyTuple_GET_ITEM(kind, 2)))
        goto leave;
    refs->hold = Py_NewRef(kind);
    if (kn == 5 && PyTuple_GET_ITEM(kind, 4) != Py_None) {
        refs->extra = PyObject_CallOneArg(PyTuple_GET_ITEM(kind, 4), raw);
        if (!refs->extra) PyErr_Clear(); /* Python encodes this one and reports whatever it finds */
        if (!refs->extra || !PyBytes_Check(refs->extra)) goto leave;
    }
    cp->nattrs = 0;
    cp->attrs[cp->nattrs++] = part_of(PyTuple_GET_ITEM(kind, 0));
    cp->head = part_of(PyTuple_GET_ITEM(kind, 1));
    cp->tail = part_of(PyTuple_GET_ITEM(kind, 2));
    int batch = PyObject_IsTrue(PyTuple_GET_ITEM(kind, 3));
    if (batch < 0) goto fail;
    if (batch) {
        PyObject *a = PyDict_GetItemWithError(enc->batch_sizes, entries);
        if (!a || !PyBytes_Check(a)) goto missed;
        cp->attrs[cp->nattrs++] = part_of(a);
    }
    if (principal != Py_None) {
        if (!PyUnicode_Check(principal)) goto leave;
        if (PyUnicode_GET_LENGTH(principal)) {
            PyObject *a = PyDict_GetItemWithError(enc->principals, principal);
            if (!a || !PyBytes_Check(a)) goto missed;
            cp->attrs[cp->nattrs++] = part_of(a);
        }
    }
    if (refs->extra) cp->attrs[cp->nattrs++] = part_of(refs->extra);
    return 1;
missed:
    if (PyErr_Occurred()) goto fail;
leave:
    call_parts_done(refs);
    return 0;
fail:
    call_parts_done(refs);
    return -1;
}

/* The queue's room and the export batch open on entry: (room_records, room_bytes, open_records, open_bytes) */
typedef struct {
    long long room_records, room_bytes, open_records, open_bytes;
} Budget;

/* encode(calls, raws, kept, start, observed_ns, (room_records, room_bytes, open_records, open_bytes))
       -> ([(chunk, records), ...], stop, nbytes, open_records, open_bytes)

   LogSink.emit_calls's loop: for calls[start:] that the metrics kept, the LogRecord elements record()
   writes, with the attributes cached in this encoder per kind of call (kinds[(labels, error, queue)] =
   (attrs, head, tail, is_batch)), per batch size (batch_sizes[entries]) and per principal
   (principals[arn]); a kind may carry a fifth item, a function of the raw record giving more attributes
   (calls that may change a queue's policy or encryption). It stops at `stop` (len(calls) when done) before
   a call it leaves to Python: a cache miss, that function failing or not giving bytes, a time that is not
   a float in range, the queue's room used up, or a record the encoder declines or fails on. Python then
   handles that one call (and fills the caches).
   The records come concatenated in chunks cut where an export batch ends: the batch open on entry holds
   open_records records of open_bytes bytes, and a batch takes at most the encoder's batch_records records
   and batch_bytes bytes (a larger record goes alone). The open batch's fill is returned for the next call. */
static PyObject *encoder_encode(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    EncoderObject *enc = (EncoderObject *)self;
    Budget bg;
    if (nargs != 6 || !PyList_Check(args[0]) || !PyList_Check(args[1]) || !PyList_Check(args[2]) ||
        !PyArg_ParseTuple(args[5], "LLLL", &bg.room_records, &bg.room_bytes, &bg.open_records, &bg.open_bytes)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "encode(calls, raws, kept, start, observed_ns, budget)");
        return NULL;
    }
    PyObject *calls = args[0], *raws = args[1], *kept = args[2];
    Py_ssize_t start = PyLong_AsSsize_t(args[3]);
    unsigned long long o = PyLong_AsUnsignedLongLong(args[4]);
    if (PyErr_Occurred()) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(calls);
    if (PyList_GET_SIZE(raws) != n || PyList_GET_SIZE(kept) != n) {
        PyErr_SetString(PyExc_ValueError, "calls, raws and kept differ in length");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    Chunk chunk = {NULL, 0, 0, 0};
    long long made = 0, nbytes = 0;
    Py_ssize_t i = start < 0 ? 0 : start;
    for (; i < n; i++) {
        if (PyList_GET_SIZE(calls) != n || PyList_GET_SIZE(raws) != n || PyList_GET_SIZE(kept) != n) {
            PyErr_SetString(PyExc_RuntimeError, "calls, raws or kept changed during encode()");
            goto fail;
        }
        PyObject *keep = PyList_GET_ITEM(kept, i);
        if (keep == Py_False) continue;
        if (keep != Py_True || made >= bg.room_records || nbytes > bg.room_bytes) break;
        RecordParts cp;
        PartRefs refs;
        cp.o_ns = o;
        int found = call_parts(enc, PyList_GET_ITEM(calls, i), PyList_GET_ITEM(raws, i), &cp, &refs);
        if (found < 0) goto fail;
        if (!found) break;
        P ps;
        settings_into(&ps, enc);
        Py_buffer raw;
        if (open_raw(&ps, refs.raw, &raw)) {
            call_parts_done(&refs);
            PyErr_Clear();
            break;
        }
        int mine;
        take_buffers(enc, &ps, &mine);
        Py_ssize_t at;
        int r = record_into(&ps, &raw, &cp, &at);
        call_parts_done(&refs);
        if (r) {
            give_buffers(enc, &ps, mine);
            PyErr_Clear(); /* Python encodes this one again and reports whatever it finds */
            break;
        }
        Py_ssize_t size = ps.out.len - at;
        if (bg.open_records > 0 &&
            (bg.open_records >= enc->batch_records || bg.open_bytes + size > enc->batch_bytes)) {
            bg.open_records = bg.open_bytes = 0; /* this record starts the next batch */
            if (chunk_seal(&chunk, out)) {
                give_buffers(enc, &ps, mine);
                goto fail;
            }
        }
        /* sized for the rest of the batch (up to 8 MiB), so a chunk is allocated about once */
        long long hint = enc->batch_bytes - bg.open_bytes < bg.room_bytes ? enc->batch_bytes - bg.open_bytes
                                                                          : bg.room_bytes;
        hint = hint < 0 ? 0 : hint < (8 << 20) ? hint : (8 << 20);
        int bad = chunk_put(&chunk, ps.out.p + at, size, (Py_ssize_t)hint + 4096);
        give_buffers(enc, &ps, mine);
        if (bad) goto fail;
        bg.open_records++;
        bg.open_bytes += size;
        nbytes += size;
        made++;
    }
    if (chunk_seal(&chunk, out)) goto fail;
    return Py_BuildValue("(NnLLL)", out, i, nbytes, bg.open_records, bg.open_bytes);
fail:
    Py_XDECREF(chunk.ba);
    Py_DECREF(out);
    return NULL;
}

/* ------------------------------------------------------------------------------------------------------
   The LogEncoder type: LogEncoder(settings), built once; see the methods' docs. */

/* settings.name as a C int / long long; -1 with an exception when absent or not an int */
static int int_setting(PyObject *settings, const char *name, long long *out) {
    PyObject *v = PyObject_GetAttrString(settings, name);
    if (!v) return -1;
    *out = PyLong_AsLongLong(v);
    Py_DECREF(v);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

static int obj_setting(PyObject *settings, const char *name, PyObject **out) {
    *out = PyObject_GetAttrString(settings, name);
    return *out ? 0 : -1;
}

static int encoder_settings(EncoderObject *enc, PyObject *settings) {
    long long ip, ua, key;
    if (int_setting(settings, "source_ip", &ip) || int_setting(settings, "user_agent", &ua) ||
        int_setting(settings, "access_key_id", &key) || int_setting(settings, "batch_records", &enc->batch_records) ||
        int_setting(settings, "batch_bytes", &enc->batch_bytes) || obj_setting(settings, "params", &enc->params) ||
        obj_setting(settings, "hasher", &enc->hasher) || obj_setting(settings, "hash_key", &enc->hash_key) ||
        obj_setting(settings, "decode", &enc->decode))
        return -1;
    enc->act_ip = (int)ip;
    enc->act_ua = (int)ua;
    enc->act_key = (int)key;
    if (!PyTuple_Check(enc->params)) {
        PyErr_SetString(PyExc_TypeError, "params must be a tuple");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(enc->params); i++) {
        PyObject *pair = PyTuple_GET_ITEM(enc->params, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(pair, 0)) ||
            !PyLong_Check(PyTuple_GET_ITEM(pair, 1))) {
            PyErr_SetString(PyExc_TypeError, "params must be a tuple of (bytes, int) pairs");
            return -1;
        }
    }
    if (enc->hash_key != Py_None && !PyBytes_Check(enc->hash_key)) {
        PyErr_SetString(PyExc_TypeError, "hash_key must be bytes or None");
        return -1;
    }
    if (enc->hash_key != Py_None && PyBytes_GET_SIZE(enc->hash_key) > 64) {
        PyErr_SetString(PyExc_ValueError, "hash_key must be at most 64 bytes (hash a longer key first)");
        return -1;
    }
    if (enc->hash_key == Py_None) return hasher_init(&enc->hasher_state, NULL, 0);
    return hasher_init(&enc->hasher_state, (const unsigned char *)PyBytes_AS_STRING(enc->hash_key),
                       PyBytes_GET_SIZE(enc->hash_key));
}

static int encoder_init(PyObject *self, PyObject *args, PyObject *kwds) {
    EncoderObject *enc = (EncoderObject *)self;
    PyObject *settings;
    static char *kw[] = {"settings", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:LogEncoder", kw, &settings)) return -1;
    if (enc->call_type) {
        PyErr_SetString(PyExc_TypeError, "a LogEncoder is built once");
        return -1;
    }
    State *st = PyType_GetModuleState(Py_TYPE(self));
    if (!st) return -1;
    enc->call_type = Py_NewRef(st->call_type);
    memcpy(enc->call_off, st->call_off, sizeof(enc->call_off));
    if (encoder_settings(enc, settings)) return -1;
    enc->kinds = PyObject_CallFunction(st->cache_type, "n", (Py_ssize_t)65536);
    enc->batch_sizes = enc->kinds ? PyObject_CallFunction(st->cache_type, "n", (Py_ssize_t)4096) : NULL;
    enc->principals = enc->batch_sizes ? PyObject_CallFunction(st->cache_type, "n", (Py_ssize_t)65536) : NULL;
    return enc->principals ? 0 : -1;
}

static int encoder_traverse(PyObject *self, visitproc visit, void *arg) {
    EncoderObject *enc = (EncoderObject *)self;
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(enc->params);
    Py_VISIT(enc->hasher);
    Py_VISIT(enc->decode);
    Py_VISIT(enc->kinds);
    Py_VISIT(enc->batch_sizes);
    Py_VISIT(enc->principals);
    return 0;
}

static int encoder_clear(PyObject *self) {
    EncoderObject *enc = (EncoderObject *)self;
    Py_CLEAR(enc->params);
    Py_CLEAR(enc->hasher);
    Py_CLEAR(enc->hash_key);
    Py_CLEAR(enc->decode);
    Py_CLEAR(enc->kinds);
    Py_CLEAR(enc->batch_sizes);
    Py_CLEAR(enc->principals);
    Py_CLEAR(enc->call_type);
    return 0;
}

static void encoder_dealloc(PyObject *self) {
    EncoderObject *enc = (EncoderObject *)self;
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    encoder_clear(self);
    for (int i = 0; i < 3; i++) PyMem_Free(enc->spare[i].p);
    hasher_free(&enc->hasher_state);
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* Every method needs __init__ to have run (a subclass could skip it). */
static int encoder_ready(PyObject *self) {
    if (((EncoderObject *)self)->call_type) return 1;
    PyErr_SetString(PyExc_TypeError, "LogEncoder.__init__ was not called");
    return 0;
}

static PyObject *encoder_body_m(PyObject *self, PyObject *raw) {
    return encoder_ready(self) ? encoder_body(self, raw) : NULL;
}

static PyObject *encoder_record_m(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return encoder_ready(self) ? encoder_record(self, args, nargs) : NULL;
}

static PyObject *encoder_encode_m(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return encoder_ready(self) ? encoder_encode(self, args, nargs) : NULL;
}

static PyMethodDef ENCODER_METHODS[] = {
    {"body", (PyCFunction)encoder_body_m, METH_O,
     "body(raw) -> (KeyValueList bytes of the body, LogRecord.attributes elements of client.address,\n"
     "user_agent.original, aws.cloudtrail.read_only, aws.cloudtrail.user_identity.type, aws.request_id,\n"
     "aws.cloudtrail.event_id). Raises ValueError on input it does not handle."},
    {"record", (PyCFunction)(void (*)(void))encoder_record_m, METH_FASTCALL,
     "record(raw, time_ns, observed_ns, (head, attrs, tail)) -> the LogRecord as a ScopeLogs.log_records\n"
     "element (tag and length included). Raises ValueError on input it does not handle."},
    {"encode", (PyCFunction)(void (*)(void))encoder_encode_m, METH_FASTCALL,
     "encode(calls, raws, kept, start, observed_ns, (room_records, room_bytes, open_records, open_bytes))\n"
     "-> ([(chunk, records), ...], stop, nbytes, open_records, open_bytes)\n"
     "LogSink.emit_calls's loop, up to the first call it leaves to Python (see the comment in _native.c)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef ENCODER_MEMBERS[] = {
    {"kinds", T_OBJECT, offsetof(EncoderObject, kinds), READONLY,
     "BoundedCache: (labels, error, queue) → (attrs, head, tail, is_batch)"},
    {"batch_sizes", T_OBJECT, offsetof(EncoderObject, batch_sizes), READONLY,
     "BoundedCache: batch entries → messaging.batch.message_count attribute"},
    {"principals", T_OBJECT, offsetof(EncoderObject, principals), READONLY,
     "BoundedCache: principal → user.id attribute"},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot ENCODER_SLOTS[] = {
    {Py_tp_doc, "LogEncoder(settings): CloudTrail records → OTLP LogRecord bytes, with the redaction and batch\n"
                "limits of settings (source_ip, user_agent, access_key_id: 0 keep, 1 drop, 2 hash; params: ((name,\n"
                "action), ...); hasher; hash_key; decode; batch_records; batch_bytes)."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, encoder_init},
    {Py_tp_dealloc, encoder_dealloc},
    {Py_tp_traverse, encoder_traverse},
    {Py_tp_clear, encoder_clear},
    {Py_tp_methods, ENCODER_METHODS},
    {Py_tp_members, ENCODER_MEMBERS},
    {0, NULL},
};

static PyType_Spec ENCODER_SPEC = {
    "exporter._native.LogEncoder", sizeof(EncoderObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE, ENCODER_SLOTS,
};

/* ------------------------------------------------------------------------------------------------------
   The Scanner type: Scanner(derive, principals_of, parse_time, raw_events=None), built once; see the
   methods' docs. raw_events: a frozenset of event names whose raw JSON scan() keeps even without keep_raw. */

static int scanner_init(PyObject *self, PyObject *args, PyObject *kwds) {
    ScannerObject *sc = (ScannerObject *)self;
    PyObject *derive, *principals_of, *parse_time, *raw_events = NULL;
    static char *kw[] = {"derive", "principals_of", "parse_time", "raw_events", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO|O:Scanner", kw, &derive, &principals_of, &parse_time,
                                     &raw_events))
        return -1;
    if (raw_events && raw_events != Py_None && !PyFrozenSet_CheckExact(raw_events)) {
        PyErr_SetString(PyExc_TypeError, "raw_events is a frozenset of event names");
        return -1;
    }
    if (sc->derive) {
        PyErr_SetString(PyExc_TypeError, "a Scanner is built once");
        return -1;
    }
    State *st = PyType_GetModuleState(Py_TYPE(self));
    if (!st) return -1;
    sc->derive = Py_NewRef(derive);
    sc->principals_of = Py_NewRef(principals_of);
    sc->parse_time = Py_NewRef(parse_time);
    sc->call_type = Py_NewRef(st->call_type);
    if (raw_events && raw_events != Py_None && PySet_GET_SIZE(raw_events) > 0) sc->raw_events = Py_NewRef(raw_events);
    memcpy(sc->call_off, st->call_off, sizeof(sc->call_off));
    sc->derived = PyObject_CallFunction(st->cache_type, "n", (Py_ssize_t)SCANNER_CACHED);
    sc->principals = sc->derived ? PyObject_CallFunction(st->cache_type, "n", (Py_ssize_t)SCANNER_CACHED) : NULL;
    if (!sc->principals) return -1;
    if (!PyDict_Check(sc->derived) || !PyDict_Check(sc->principals)) {
        PyErr_SetString(PyExc_TypeError, "exporter.cache.BoundedCache is a dict");
        return -1;
    }
    return 0;
}

/* Everything the tables hold is str, tuples of str and None, floats, or derive's answers (named tuples
   of those): none can refer back to the scanner, so only the Python functions and caches are visited. */
static int scanner_traverse(PyObject *self, visitproc visit, void *arg) {
    ScannerObject *sc = (ScannerObject *)self;
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(sc->derive);
    Py_VISIT(sc->principals_of);
    Py_VISIT(sc->parse_time);
    Py_VISIT(sc->derived);
    Py_VISIT(sc->principals);
    Py_VISIT(sc->raw_events);
    return 0;
}

static int scanner_clear(PyObject *self) {
    ScannerObject *sc = (ScannerObject *)self;
    Py_CLEAR(sc->derive);
    Py_CLEAR(sc->principals_of);
    Py_CLEAR(sc->parse_time);
    Py_CLEAR(sc->derived);
    Py_CLEAR(sc->principals);
    Py_CLEAR(sc->call_type);
    Py_CLEAR(sc->raw_events);
    for (int i = 0; i < INTERN_SLOTS; i++) Py_CLEAR(sc->intern[i]);
    for (int i = 0; i < TUPLE_SLOTS; i++) Py_CLEAR(sc->tuples[i]);
    IdEntry *tables[3] = {sc->id_derived, sc->id_who, sc->id_time};
    for (int t = 0; t < 3; t++) {
        for (int i = 0; i < ID_SLOTS; i++) {
            Py_CLEAR(tables[t][i].key);
            Py_CLEAR(tables[t][i].val);
        }
    }
    return 0;
}

static void scanner_dealloc(PyObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    scanner_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static int ready(ScannerObject *sc) {
    if (sc->derive) return 1;
    PyErr_SetString(PyExc_TypeError, "Scanner.__init__ was not called");
    return 0;
}

static PyObject *scanner_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    ScannerObject *sc = (ScannerObject *)self;
    if (!ready(sc)) return NULL;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "rows(data, keep_raw)");
        return NULL;
    }
    int keep_raw = PyObject_IsTrue(args[1]);
    if (keep_raw < 0) return NULL;
    Py_ssize_t other = 0;
    PyObject *rows = rows_of(sc, args[0], keep_raw, 1, &other);
    if (!rows || rows == Py_None) return rows;
    return Py_BuildValue("(Nn)", rows, other);
}

static PyObject *scanner_calls(PyObject *self, PyObject *rows) {
    ScannerObject *sc = (ScannerObject *)self;
    return ready(sc) ? calls_of(sc, rows) : NULL;
}

static PyObject *scanner_scan(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    ScannerObject *sc = (ScannerObject *)self;
    if (!ready(sc)) return NULL;
    if (nargs != 2 && nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "scan(data, keep_raw, event_ids=True)");
        return NULL;
    }
    int keep_raw = PyObject_IsTrue(args[1]), event_ids = nargs == 3 ? PyObject_IsTrue(args[2]) : 1;
    if (keep_raw < 0 || event_ids < 0) return NULL;
    Py_ssize_t other = 0;
    PyObject *rows = rows_of(sc, args[0], keep_raw, event_ids, &other);
    if (!rows || rows == Py_None) return rows;
    PyObject *calls = calls_of(sc, rows), *raws = NULL;
    Py_ssize_t n = PyList_GET_SIZE(rows);
    int any = keep_raw; /* without keep_raw: raws aligned with calls when some were kept (raw_events) */
    for (Py_ssize_t i = 0; !any && sc->raw_events && i < n; i++)
        any = PyTuple_GET_ITEM(PyList_GET_ITEM(rows, i), 6) != Py_None;
    if (calls) raws = PyList_New(any ? n : 0);
    for (Py_ssize_t i = 0; raws && any && i < n; i++)
        PyList_SET_ITEM(raws, i, Py_NewRef(PyTuple_GET_ITEM(PyList_GET_ITEM(rows, i), 6)));
    Py_DECREF(rows);
    if (!raws) {
        Py_XDECREF(calls);
        return NULL;
    }
    return Py_BuildValue("(NnN)", calls, other, raws);
}

static PyMethodDef SCANNER_METHODS[] = {
    {"scan", (PyCFunction)(void (*)(void))scanner_scan, METH_FASTCALL,
     "scan(data, keep_raw, event_ids=True) -> (calls, other, raws) | None\n"
     "A {\"Records\": [...]} delivery's SQS calls (exporter.model.Call), its count of other records, and the\n"
     "raw JSON of each call with keep_raw (else [], or, when a call named in raw_events was read, the raw JSON\n"
     "of those and None for the others). event_ids=False: each Call's event_id is None (not read).\n"
     "None: declined, the record-by-record path decides."},
    {"rows", (PyCFunction)(void (*)(void))scanner_rows, METH_FASTCALL,
     "rows(data, keep_raw) -> ([(dkey, ikey, errorCode, entries, eventTime, eventID, raw), ...], other) | None\n"
     "The first half of scan(): the fields of each SQS call as read (see the comment in _native.c)."},
    {"calls", (PyCFunction)scanner_calls, METH_O, "calls(rows) -> [Call, ...]: the second half of scan()."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot SCANNER_SLOTS[] = {
    {Py_tp_doc, "Scanner(derive, principals_of, parse_time): reads CloudTrail deliveries into calls.\n"
                "derive(dkey, ikey) -> (Labels, QueueRef, is_batch), principals_of(ikey) -> (role, arn) and\n"
                "parse_time(str) -> float | None answer what the scanner's caches do not hold."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, scanner_init},
    {Py_tp_dealloc, scanner_dealloc},
    {Py_tp_traverse, scanner_traverse},
    {Py_tp_clear, scanner_clear},
    {Py_tp_methods, SCANNER_METHODS},
    {0, NULL},
};

static PyType_Spec SCANNER_SPEC = {
    "exporter._native.Scanner", sizeof(ScannerObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE, SCANNER_SLOTS,
};


/* ------------------------------------------------------------------------------------------------------
   The Tally: the metrics' per-call counting loop and the tables it writes.

   Why C: the loop runs once per SQS call (hundreds of thousands per replay) and was the largest single
   cost of a replay in Python (~750 ns a call); here it is a few dict operations a call. The plain-Python
   twin, exporter.sinks.metrics.tally.Tally, runs without the extension and is what this must equal
   (tests/test_native_tally.py, tests/fuzz/targets.py).

   It owns, and shows read-only as attributes (the objects themselves, which the aggregate's views,
   snapshot/restore and the collector read and refill in place):
     calls       key → count                     batch  key[:4] → entries
     errors      (account, region, queue, name, error code) → count, the keys the error caps give
     newest      (account, region) → newest event time
     principals  (account, region, queue) → {principal: newest time}   principal_count (settable)
     lag         source → [bucket counts..., +Inf count, sum]
     slots       labels → slot, a BoundedCache the `slot` callback fills: (key, qkey, akey, known, change),
                 known a BoundedCache error code → errors key, filled by `error_key`
     access      qkey → {principal: (ok, err, cross)}, the access-map cells a principal's calls to a queue
                 increment (ok/err: one-element lists, or None; cross: None, or (cells, account, region,
                 queue, caller label), the cross-account cell being cells[(account, region, queue, caller
                 label, event name)], made [0] at its first call); at most max_slots principals in all (then
                 emptied), none remembered whose name or queue is longer than 256 (hostile input)
     changes     positions of the last add_calls' calls whose slot says they may change a queue
   forget() empties slots and access (on restore, which replaces the queues, caps and access-map cells).
   What is rare or policy-heavy stays Python, through the callbacks given at construction: slot(labels) on
   a slot-cache miss, error_key(qkey, name, error, known) for a code its slot does not know (the error
   caps; it puts into `known` what stays), access_keys(qkey, principal) on an access miss,
   prune(qkey, seen) before a new principal goes over a cap; `shared` (settable), when set, gets
   shared.add(*qkey, t, principal) per timed call.

   Exactness: every table ends with the values the Python loop gives, in the same key order. Within one
   add_calls some writes wait (see Pending and RunSlot): the newest time and the lag histogram are kept
   as doubles and written back before any callback runs Python, with the same additions in the same
   order as Python's `+=` (so the lag sum is the same double); a slot's calls after its first are added
   to the calls table when add_calls returns (no callback reads that table; its key is written at once,
   which keeps the order). An event time or clock that is not a float, or a table value that is not one,
   takes the generic path of the Python operators. */

#define TALLY_MAX_BUCKETS 64
#define TALLY_MAX_QKEY 8
#define TALLY_RUN_SLOTS 512 /* slots remembered during one add_calls (direct-mapped by address) */
#define TALLY_LONG 256      /* a principal or queue name longer than this is not remembered in `access` */
#define TALLY_HIT_SLOTS 1024 /* labels objects whose slot is remembered by identity */

/* A slot met during the current add_calls: the calls it counted since its key was first written (added
   to the calls table when the entry is flushed; the key itself is written at once, so the table keeps
   the order keys first appear in), and its queue's principal map and access map while no Python has run
   since (epoch). */
typedef struct {
    PyObject *slot, *seen, *whos;
    Py_ssize_t n;
    uint64_t epoch, whos_epoch;
} RunSlot;

typedef struct {
    PyObject_HEAD
    PyObject *slot_fn, *error_fn, *access_fn, *prune_fn;
    PyObject *calls, *errors, *batch, *principals, *newest, *lag, *slots, *access, *changes, *shared;
    PyObject *buckets; /* tuple of the lag bucket bounds, ascending */
    PyObject *call_type, *add_name, *one, *zero_f;
    Py_ssize_t call_off[NCALL];
    Py_ssize_t max_principals, max_total, principal_count, nb, max_slots, access_n;
    int by_arn, busy;
    uint64_t epoch; /* advanced whenever a callback may have run Python */
    double bound[TALLY_MAX_BUCKETS];
    RunSlot run[TALLY_RUN_SLOTS];
    /* labels object → its slot, by identity (direct-mapped by address): the scanner hands out one Labels
       object per distinct record key, so most calls find their slot here without hashing the labels. Both
       held strongly (an address is not reused while held); emptied by forget(). A slot that `slots` has
       since let go of is still right: its answer for the same labels does not change. */
    PyObject *hit_labels[TALLY_HIT_SLOTS], *hit_slot[TALLY_HIT_SLOTS];
} TallyObject;

/* What a run of calls has counted but not yet written: the newest time of one (account, region) and the
   lag histogram of the source, as doubles. The same additions and comparisons in the same order as writing
   them at once, so the same values; written back (flush) before any callback runs Python, before a
   generic-path update, and when add_calls returns. */
typedef struct {
    PyObject *akey;    /* NULL: no newest time pending */
    PyObject *best;    /* the event time to store there (NULL: the table's value stands) */
    double newest;     /* the larger of the table's value and those seen since */
    PyObject *counts;  /* the source's histogram (strong), or NULL before the first timed call */
    int loaded;        /* acc holds counts' values */
    uint64_t dirty;    /* acc entries changed since loaded */
    double acc[TALLY_MAX_BUCKETS + 2];
} Pending;

static int pending_flush(TallyObject *ta, Pending *pd) {
    int r = 0;
    if (pd->akey) {
        if (pd->best) r = PyDict_SetItem(ta->newest, pd->akey, pd->best);
        Py_CLEAR(pd->akey);
        Py_CLEAR(pd->best);
    }
    for (Py_ssize_t i = 0; pd->loaded && i < ta->nb + 2; i++) {
        if (!(pd->dirty >> i & 1)) continue;
        PyObject *v = PyFloat_FromDouble(pd->acc[i]);
        if (!v || PyList_SetItem(pd->counts, i, v)) r = -1;
    }
    pd->loaded = 0;
    pd->dirty = 0;
    return r;
}

/* Before a callback: write what is pending, and forget the principal maps found since. */
static int before_python(TallyObject *ta, Pending *pd) {
    ta->epoch++;
    return pending_flush(ta, pd);
}

static int tally_bump(PyObject *d, PyObject *key, PyObject *by);

/* The calls an entry counted since its key was written, into the calls table; the entry is emptied. */
static int run_flush(TallyObject *ta, RunSlot *e) {
    int r = 0;
    if (e->n) {
        PyObject *key = PyTuple_GET_ITEM(e->slot, 0), *old = PyDict_GetItemWithError(ta->calls, key);
        if (old && PyLong_CheckExact(old)) {
            PyObject *by = PyLong_FromSsize_t(e->n);
            r = by ? tally_bump(ta->calls, key, by) : -1;
            Py_XDECREF(by);
        } else { /* another kind of number: one at a time, as Python adds them */
            for (Py_ssize_t i = 0; !r && i < e->n; i++) r = tally_bump(ta->calls, key, ta->one);
        }
    }
    e->n = 0;
    Py_CLEAR(e->slot);
    Py_CLEAR(e->seen);
    Py_CLEAR(e->whos);
    return r;
}

static int run_flush_all(TallyObject *ta) {
    int r = 0;
    for (int i = 0; i < TALLY_RUN_SLOTS; i++)
        if (ta->run[i].slot && run_flush(ta, &ta->run[i])) r = -1;
    return r;
}

/* Count one call of this slot in the calls table; its entry. */
static RunSlot *run_count(TallyObject *ta, PyObject *slot) {
    RunSlot *e = &ta->run[((uintptr_t)slot >> 4) % TALLY_RUN_SLOTS];
    if (e->slot == slot) {
        e->n++;
        return e;
    }
    if (e->slot && run_flush(ta, e)) return NULL;
    if (tally_bump(ta->calls, PyTuple_GET_ITEM(slot, 0), ta->one)) return NULL;
    e->slot = Py_NewRef(slot);
    return e;
}

/* d[key] = d.get(key, 0) + by, as Python computes it (exact ints stay on a fast path) */
static int tally_bump(PyObject *d, PyObject *key, PyObject *by) {
    PyObject *old = PyDict_GetItemWithError(d, key), *v = NULL;
    if (!old) {
        if (PyErr_Occurred()) return -1;
        if (PyLong_CheckExact(by)) return PyDict_SetItem(d, key, by);
        PyObject *zero = PyLong_FromLong(0);
        if (!zero) return -1;
        v = PyNumber_Add(zero, by);
        Py_DECREF(zero);
    } else if (PyLong_CheckExact(old) && PyLong_CheckExact(by)) {
        int of1, of2;
        long a = PyLong_AsLongAndOverflow(old, &of1), b = PyLong_AsLongAndOverflow(by, &of2), s;
        if (!of1 && !of2 && !__builtin_add_overflow(a, b, &s)) v = PyLong_FromLong(s);
        else v = PyNumber_Add(old, by);
    } else {
        v = PyNumber_Add(old, by);
    }
    if (!v) return -1;
    int r = PyDict_SetItem(d, key, v);
    Py_DECREF(v);
    return r;
}

/* cell[0] += 1 (an access-map cell: a one-element list the AccessMap hands out to be incremented) */
static int tally_cell(TallyObject *ta, PyObject *cell) {
    if (PyList_CheckExact(cell) && PyList_GET_SIZE(cell) > 0) {
        PyObject *old = PyList_GET_ITEM(cell, 0), *v;
        int of;
        long a = PyLong_CheckExact(old) ? PyLong_AsLongAndOverflow(old, &of) : (of = 1, 0);
        if (!of && a < LONG_MAX) v = PyLong_FromLong(a + 1);
        else v = PyNumber_InPlaceAdd(old, ta->one);
        if (!v) return -1;
        return PyList_SetItem(cell, 0, v); /* steals v, releases the old value */
    }
    PyObject *idx = PyLong_FromLong(0), *old = idx ? PyObject_GetItem(cell, idx) : NULL;
    PyObject *v = old ? PyNumber_InPlaceAdd(old, ta->one) : NULL;
    int r = v ? PyObject_SetItem(cell, idx, v) : -1;
    Py_XDECREF(v);
    Py_XDECREF(old);
    Py_XDECREF(idx);
    return r;
}

/* t > old, as Python compares them (old NULL: 0.0) */
static int tally_later(TallyObject *ta, PyObject *t, PyObject *old) {
    if (PyFloat_CheckExact(t)) {
        if (!old) return PyFloat_AS_DOUBLE(t) > 0.0;
        if (PyFloat_CheckExact(old)) return PyFloat_AS_DOUBLE(t) > PyFloat_AS_DOUBLE(old);
    }
    return PyObject_RichCompareBool(t, old ? old : ta->zero_f, Py_GT);
}

/* The lag of a timed call into the source's histogram: counts[bisect_left(buckets, lag)] += 1,
   counts[-1] += lag. With now and t exact floats, onto the pending doubles. */
static int tally_lag(TallyObject *ta, Pending *pd, PyObject *now, PyObject *t) {
    Py_ssize_t lo = 0, hi = ta->nb, n = PyList_GET_SIZE(pd->counts);
    if (PyFloat_CheckExact(now) && PyFloat_CheckExact(t) && (pd->loaded || n == ta->nb + 2)) {
        if (!pd->loaded) {
            for (Py_ssize_t i = 0; i < n; i++) {
                PyObject *v = PyList_GET_ITEM(pd->counts, i);
                if (!PyFloat_CheckExact(v)) goto generic;
                pd->acc[i] = PyFloat_AS_DOUBLE(v);
            }
            pd->loaded = 1;
        }
        double l = PyFloat_AS_DOUBLE(now) - PyFloat_AS_DOUBLE(t);
        while (lo < hi) {
            Py_ssize_t mid = (lo + hi) / 2;
            if (ta->bound[mid] < l) lo = mid + 1;
            else hi = mid;
        }
        pd->acc[lo] += 1.0;
        pd->acc[ta->nb + 1] += l;
        pd->dirty |= (uint64_t)1 << lo | (uint64_t)1 << (ta->nb + 1);
        return 0;
    }
generic:
    if (pending_flush(ta, pd)) return -1;
    PyObject *lag = PyNumber_Subtract(now, t);
    if (!lag) return -1;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        int lt = PyObject_RichCompareBool(PyTuple_GET_ITEM(ta->buckets, mid), lag, Py_LT);
        if (lt < 0) goto fail;
        if (lt) lo = mid + 1;
        else hi = mid;
    }
    for (int part = 0; part < 2; part++) {
        n = PyList_GET_SIZE(pd->counts);
        Py_ssize_t i = part ? n - 1 : lo;
        if (i < 0 || i >= n) {
            PyErr_SetString(PyExc_IndexError, "list index out of range");
            goto fail;
        }
        PyObject *old = Py_NewRef(PyList_GET_ITEM(pd->counts, i));
        PyObject *v = PyNumber_InPlaceAdd(old, part ? lag : ta->one);
        Py_DECREF(old);
        if (!v || PyList_SetItem(pd->counts, i, v)) goto fail;
    }
    Py_DECREF(lag);
    return 0;
fail:
    Py_DECREF(lag);
    return -1;
}

/* The newest time of the call's (account, region): pending while the calls' times are exact floats. */
static int tally_newest(TallyObject *ta, Pending *pd, PyObject *akey, PyObject *t) {
    if (PyFloat_CheckExact(t)) {
        int same = !pd->akey ? 0 : pd->akey == akey ? 1 : PyObject_RichCompareBool(pd->akey, akey, Py_EQ);
        if (same < 0) return -1;
        if (!same) {
            if (pending_flush(ta, pd)) return -1;
            PyObject *old = PyDict_GetItemWithError(ta->newest, akey);
            if (!old && PyErr_Occurred()) return -1;
            if (!old || PyFloat_CheckExact(old)) {
                pd->newest = old ? PyFloat_AS_DOUBLE(old) : 0.0;
                pd->akey = Py_NewRef(akey);
                same = 1;
            }
        }
        if (same) {
            if (PyFloat_AS_DOUBLE(t) > pd->newest) {
                pd->newest = PyFloat_AS_DOUBLE(t);
                Py_XSETREF(pd->best, Py_NewRef(t));
            }
            return 0;
        }
    }
    if (pending_flush(ta, pd)) return -1;
    PyObject *old = PyDict_GetItemWithError(ta->newest, akey);
    int later = old || !PyErr_Occurred() ? tally_later(ta, t, old) : -1;
    return later < 0 || (later && PyDict_SetItem(ta->newest, akey, t)) ? -1 : 0;
}

/* A timed call's principal: shared.add(*qkey, t, principal), then its newest time in the queue's map
   (a new one first asks `prune` when a cap is reached). */
static int tally_principal(TallyObject *ta, Pending *pd, RunSlot *e, PyObject *shared, PyObject *qkey, PyObject *t,
                           PyObject *principal) {
    if (shared) {
        if (before_python(ta, pd)) return -1;
        PyObject *args[TALLY_MAX_QKEY + 3];
        Py_ssize_t nq = PyTuple_GET_SIZE(qkey);
        args[0] = shared;
        for (Py_ssize_t j = 0; j < nq; j++) args[1 + j] = PyTuple_GET_ITEM(qkey, j);
        args[1 + nq] = t;
        args[2 + nq] = principal;
        PyObject *r = PyObject_VectorcallMethod(ta->add_name, args, (size_t)(3 + nq), NULL);
        if (!r) return -1;
        Py_DECREF(r);
    }
    PyObject *seen = e->seen && e->epoch == ta->epoch ? e->seen : PyDict_GetItemWithError(ta->principals, qkey);
    if (seen) {
        Py_INCREF(seen);
    } else {
        if (PyErr_Occurred()) return -1;
        if (!(seen = PyDict_New()) || PyDict_SetItem(ta->principals, qkey, seen)) goto fail;
    }
    if (!PyDict_Check(seen)) {
        PyErr_SetString(PyExc_TypeError, "principals maps a queue to a dict");
        goto fail;
    }
    if (seen != e->seen) {
        Py_XSETREF(e->seen, Py_NewRef(seen));
        e->epoch = ta->epoch;
    }
    PyObject *old = PyDict_GetItemWithError(seen, principal);
    if (!old) {
        if (PyErr_Occurred()) goto fail;
        if (PyDict_GET_SIZE(seen) >= ta->max_principals || ta->principal_count >= ta->max_total) {
            if (before_python(ta, pd)) goto fail;
            PyObject *r = PyObject_CallFunctionObjArgs(ta->prune_fn, qkey, seen, NULL);
            if (!r) goto fail;
            Py_DECREF(r);
        }
        if (PyDict_SetItem(seen, principal, t)) goto fail;
        ta->principal_count++;
    } else {
        int later = tally_later(ta, t, old);
        if (later < 0 || (later && PyDict_SetItem(seen, principal, t))) goto fail;
    }
    Py_DECREF(seen);
    return 0;
fail:
    Py_XDECREF(seen);
    return -1;
}

/* len(v) <= TALLY_LONG, as Python's len() says (-1: an error) */
static int tally_short(PyObject *v) {
    Py_ssize_t n = PyUnicode_CheckExact(v) ? PyUnicode_GET_LENGTH(v) : PyObject_Length(v);
    return n < 0 ? -1 : n <= TALLY_LONG;
}

/* Remember a principal's access cells on a queue (unless a name is too long); emptied at max_slots. */
static int access_remember(TallyObject *ta, PyObject *qkey, PyObject *principal, PyObject *ak) {
    int ok = principal == Py_None ? 1 : tally_short(principal);
    for (Py_ssize_t i = 0; ok > 0 && i < PyTuple_GET_SIZE(qkey); i++) ok = tally_short(PyTuple_GET_ITEM(qkey, i));
    if (ok <= 0) return ok;
    if (ta->access_n >= ta->max_slots) {
        PyDict_Clear(ta->access);
        ta->access_n = 0;
        ta->epoch++;
    }
    PyObject *whos = PyDict_GetItemWithError(ta->access, qkey);
    if (whos) {
        Py_INCREF(whos);
    } else {
        if (PyErr_Occurred() || !(whos = PyDict_New())) return -1;
        if (PyDict_SetItem(ta->access, qkey, whos)) goto fail;
    }
    if (!PyDict_Check(whos)) {
        PyErr_SetString(PyExc_TypeError, "access maps a queue to a dict");
        goto fail;
    }
    if (PyDict_SetItem(whos, principal, ak)) goto fail;
    ta->access_n++;
    Py_DECREF(whos);
    return 0;
fail:
    Py_DECREF(whos);
    return -1;
}

/* The access cells of this principal on the slot's queue: remembered, or asked of `access_keys`. */
static PyObject *tally_access(TallyObject *ta, Pending *pd, RunSlot *e, PyObject *qkey, PyObject *principal) {
    PyObject *whos = e->whos && e->whos_epoch == ta->epoch ? e->whos : NULL, *ak = NULL;
    if (!whos) {
        whos = PyDict_GetItemWithError(ta->access, qkey);
        if (!whos && PyErr_Occurred()) return NULL;
        if (whos && !PyDict_Check(whos)) {
            PyErr_SetString(PyExc_TypeError, "access maps a queue to a dict");
            return NULL;
        }
        if (whos) {
            Py_XSETREF(e->whos, Py_NewRef(whos));
            e->whos_epoch = ta->epoch;
        }
    }
    if (whos && (ak = PyDict_GetItemWithError(whos, principal)) && ak != Py_None) return Py_NewRef(ak);
    if (PyErr_Occurred() || before_python(ta, pd)) return NULL;
    ak = PyObject_CallFunctionObjArgs(ta->access_fn, qkey, principal, NULL);
    if (!ak) return NULL;
    if (!PyTuple_Check(ak) || PyTuple_GET_SIZE(ak) != 3) {
        Py_DECREF(ak);
        PyErr_SetString(PyExc_TypeError, "access keys are (ok, err, cross)");
        return NULL;
    }
    if (access_remember(ta, qkey, principal, ak)) Py_CLEAR(ak);
    return ak;
}

/* A call from another account: its cross-account cell, cells[(account, region, queue, caller, name)]. */
static int tally_cross(TallyObject *ta, PyObject *cross, PyObject *name) {
    PyObject *cells;
    if (!PyTuple_Check(cross) || PyTuple_GET_SIZE(cross) != 5 || !PyDict_Check(cells = PyTuple_GET_ITEM(cross, 0))) {
        PyErr_SetString(PyExc_TypeError, "a cross-account key is (cells, account, region, queue, caller)");
        return -1;
    }
    PyObject *ckey = PyTuple_Pack(5, PyTuple_GET_ITEM(cross, 1), PyTuple_GET_ITEM(cross, 2),
                                  PyTuple_GET_ITEM(cross, 3), PyTuple_GET_ITEM(cross, 4), name);
    if (!ckey) return -1;
    PyObject *cell = PyDict_GetItemWithError(cells, ckey);
    if (cell && cell != Py_None) {
        Py_INCREF(cell);
    } else if (PyErr_Occurred() || !(cell = PyList_New(1))) {
        Py_DECREF(ckey);
        return -1;
    } else {
        PyList_SET_ITEM(cell, 0, PyLong_FromLong(0)); /* a small int: cannot fail */
        if (PyDict_SetItem(cells, ckey, cell)) Py_CLEAR(cell);
    }
    Py_DECREF(ckey);
    int r = cell ? tally_cell(ta, cell) : -1;
    Py_XDECREF(cell);
    return r;
}

/* A failed call: errors[its key] += 1, the key known to its slot or asked of `error_key`. */
static int tally_error(TallyObject *ta, Pending *pd, PyObject *slot, PyObject *error) {
    PyObject *known = PyTuple_GET_ITEM(slot, 3), *ekey = PyDict_GetItemWithError(known, error);
    if (ekey && ekey != Py_None) {
        Py_INCREF(ekey);
    } else {
        if (PyErr_Occurred() || before_python(ta, pd)) return -1;
        ekey = PyObject_CallFunctionObjArgs(ta->error_fn, PyTuple_GET_ITEM(slot, 1),
                                            PyTuple_GET_ITEM(PyTuple_GET_ITEM(slot, 0), 3), error, known, NULL);
        if (!ekey) return -1;
    }
    int r = tally_bump(ta->errors, ekey, ta->one);
    Py_DECREF(ekey);
    return r;
}

/* One call, with its slot (held by the caller). */
static int tally_one(TallyObject *ta, Pending *pd, PyObject *call, PyObject *slot, Py_ssize_t pos, PyObject *now,
                     PyObject *shared, PyObject *source) {
    PyObject *key = PyTuple_GET_ITEM(slot, 0), *qkey = PyTuple_GET_ITEM(slot, 1);
    PyObject *akey = PyTuple_GET_ITEM(slot, 2);
    PyObject *change = PyTuple_GET_ITEM(slot, 4);
    RunSlot *e = run_count(ta, slot);
    if (!e) return -1;
    PyObject *error = call_field(ta->call_off, call, C_ERROR);
    if (error != Py_None && tally_error(ta, pd, slot, error)) return -1;
    PyObject *entries = call_field(ta->call_off, call, C_ENTRIES);
    int some = PyObject_IsTrue(entries);
    if (some < 0) return -1;
    if (some) {
        PyObject *bkey = PyTuple_GetSlice(key, 0, 4);
        if (!bkey) return -1;
        int r = tally_bump(ta->batch, bkey, entries);
        Py_DECREF(bkey);
        if (r) return -1;
    }
    PyObject *principal = call_field(ta->call_off, call, ta->by_arn ? C_ARN : C_ROLE);
    PyObject *ak = tally_access(ta, pd, e, qkey, principal);
    if (!ak) return -1;
    PyObject *cell = PyTuple_GET_ITEM(ak, error == Py_None ? 0 : 1), *cross = PyTuple_GET_ITEM(ak, 2);
    int r = (cell != Py_None && tally_cell(ta, cell)) ||
            (cross != Py_None && tally_cross(ta, cross, PyTuple_GET_ITEM(key, 3)));
    Py_DECREF(ak);
    if (r) return -1;
    int changes = change == Py_True ? 1 : change == Py_False ? 0 : PyObject_IsTrue(change);
    if (changes < 0) return -1;
    if (changes) {
        PyObject *at = PyLong_FromSsize_t(pos);
        int r2 = at ? PyList_Append(ta->changes, at) : -1;
        Py_XDECREF(at);
        if (r2) return -1;
    }
    PyObject *t = call_field(ta->call_off, call, C_TIME);
    if (t == Py_None) return 0;
    Py_INCREF(t); /* the callbacks below run Python */
    if (tally_newest(ta, pd, akey, t)) goto fail;
    if (principal != Py_None) {
        Py_INCREF(principal);
        r = tally_principal(ta, pd, e, shared, qkey, t, principal);
        Py_DECREF(principal);
        if (r) goto fail;
    }
    if (!pd->counts) {
        pd->counts = PyList_New(ta->nb + 2);
        if (!pd->counts) goto fail;
        for (Py_ssize_t i = 0; i < ta->nb + 2; i++) PyList_SET_ITEM(pd->counts, i, Py_NewRef(ta->zero_f));
        if (PyDict_SetItem(ta->lag, source, pd->counts)) goto fail;
    }
    if (tally_lag(ta, pd, now, t)) goto fail;
    Py_DECREF(t);
    return 0;
fail:
    Py_DECREF(t);
    return -1;
}

/* Only a tuple of exact strs is remembered by identity: its hash and equality cannot change. */
static int tally_plain_labels(PyObject *labels) {
    if (!PyTuple_Check(labels)) return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(labels); i++)
        if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(labels, i))) return 0;
    return 1;
}

static void tally_hits_clear(TallyObject *ta) {
    for (int i = 0; i < TALLY_HIT_SLOTS; i++) {
        Py_CLEAR(ta->hit_labels[i]);
        Py_CLEAR(ta->hit_slot[i]);
    }
}

static PyObject *tally_slot(TallyObject *ta, Pending *pd, PyObject *labels) {
    Py_ssize_t h = (Py_ssize_t)(((uintptr_t)labels >> 4) % TALLY_HIT_SLOTS);
    if (ta->hit_labels[h] == labels) return Py_NewRef(ta->hit_slot[h]);
    PyObject *slot = PyDict_GetItemWithError(ta->slots, labels);
    if (slot) {
        Py_INCREF(slot);
    } else {
        if (PyErr_Occurred() || before_python(ta, pd)) return NULL;
        slot = PyObject_CallOneArg(ta->slot_fn, labels);
        if (!slot) return NULL;
    }
    PyObject *key, *qkey;
    if (!PyTuple_Check(slot) || PyTuple_GET_SIZE(slot) != 5 || !PyTuple_Check(key = PyTuple_GET_ITEM(slot, 0)) ||
        PyTuple_GET_SIZE(key) < 4 || !PyTuple_Check(qkey = PyTuple_GET_ITEM(slot, 1)) ||
        PyTuple_GET_SIZE(qkey) > TALLY_MAX_QKEY || !PyDict_Check(PyTuple_GET_ITEM(slot, 3))) {
        Py_DECREF(slot);
        PyErr_SetString(PyExc_TypeError, "a slot is (key, qkey, akey, known: dict, change)");
        return NULL;
    }
    if (tally_plain_labels(labels)) {
        Py_XSETREF(ta->hit_labels[h], Py_NewRef(labels));
        Py_XSETREF(ta->hit_slot[h], Py_NewRef(slot));
    }
    return slot;
}

static PyObject *tally_add_calls(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    TallyObject *ta = (TallyObject *)self;
    if (!ta->calls) {
        PyErr_SetString(PyExc_TypeError, "Tally.__init__ was not called");
        return NULL;
    }
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "add_calls(calls, now, source)");
        return NULL;
    }
    if (ta->busy) { /* a callback counting into the same tally: its run table is in use */
        PyErr_SetString(PyExc_RuntimeError, "Tally.add_calls is not reentrant");
        return NULL;
    }
    PyObject *now = args[1], *source = args[2];
    PyObject *seq = PySequence_Fast(args[0], "add_calls: calls is iterable");
    if (!seq) return NULL;
    PyObject *changes = PyList_New(0);
    if (!changes) {
        Py_DECREF(seq);
        return NULL;
    }
    Py_SETREF(ta->changes, changes);
    PyObject *shared = ta->shared && ta->shared != Py_None ? Py_NewRef(ta->shared) : NULL;
    Pending pd = {0};
    pd.counts = PyDict_GetItemWithError(ta->lag, source);
    Py_XINCREF(pd.counts);
    Py_ssize_t kept = 0;
    int failed = PyErr_Occurred() ? -1 : 0;
    if (!failed && pd.counts && !PyList_Check(pd.counts)) {
        PyErr_SetString(PyExc_TypeError, "a lag histogram is a list");
        failed = -1;
    }
    ta->busy = 1;
    Py_INCREF(now);
    Py_INCREF(source);
    for (Py_ssize_t i = 0; !failed && i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *call = PySequence_Fast_GET_ITEM(seq, i);
        if (!Py_IS_TYPE(call, (PyTypeObject *)ta->call_type)) {
            PyErr_SetString(PyExc_TypeError, "add_calls counts exporter.model.Call objects");
            failed = -1;
            break;
        }
        Py_INCREF(call);
        PyObject *slot = tally_slot(ta, &pd, call_field(ta->call_off, call, C_LABELS));
        failed = slot ? tally_one(ta, &pd, call, slot, kept++, now, shared, source) : -1;
        Py_XDECREF(slot);
        Py_DECREF(call);
    }
    /* what was counted before a failure stays counted, as in Python */
    PyObject *type = NULL, *value = NULL, *tb = NULL;
    if (failed) PyErr_Fetch(&type, &value, &tb);
    int unwritten = pending_flush(ta, &pd);
    unwritten = run_flush_all(ta) || unwritten;
    if (failed) PyErr_Restore(type, value, tb);
    ta->busy = 0;
    Py_DECREF(now);
    Py_DECREF(source);
    Py_DECREF(seq);
    Py_XDECREF(shared);
    Py_XDECREF(pd.counts);
    return failed || unwritten ? NULL : PyLong_FromSsize_t(kept);
}

static int tally_init(PyObject *self, PyObject *args, PyObject *kwds) {
    TallyObject *ta = (TallyObject *)self;
    int by_arn = -1;
    Py_ssize_t max_p = -1, max_total = -1, max_slots = -1;
    PyObject *buckets = NULL, *slot = NULL, *error = NULL, *access = NULL, *prune = NULL;
    static char *kw[] = {"by_arn", "max_principals", "max_principals_total", "buckets", "max_slots",
                         "slot", "error_key", "access_keys", "prune", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$pnnO!nOOOO:Tally", kw, &by_arn, &max_p, &max_total,
                                     &PyTuple_Type, &buckets, &max_slots, &slot, &error, &access, &prune))
        return -1;
    if (by_arn < 0 || max_p < 0 || max_total < 0 || max_slots < 0 || !buckets || !slot || !error || !access ||
        !prune) {
        PyErr_SetString(PyExc_TypeError, "Tally: every setting and callback is given (see _native.c)");
        return -1;
    }
    if (ta->calls) {
        PyErr_SetString(PyExc_TypeError, "a Tally is built once");
        return -1;
    }
    Py_ssize_t nb = PyTuple_GET_SIZE(buckets);
    if (nb > TALLY_MAX_BUCKETS) {
        PyErr_SetString(PyExc_ValueError, "Tally: at most 64 lag buckets");
        return -1;
    }
    for (Py_ssize_t i = 0; i < nb; i++) {
        /* compared with a float lag as Python compares them: floats, and ints a double holds exactly */
        PyObject *b = PyTuple_GET_ITEM(buckets, i);
        long v = PyLong_CheckExact(b) ? PyLong_AsLong(b) : 0;
        if (PyErr_Occurred()) return -1;
        if (!PyFloat_CheckExact(b) && !(PyLong_CheckExact(b) && v > -(1L << 53) && v < (1L << 53))) {
            PyErr_SetString(PyExc_TypeError, "Tally: lag buckets are floats or ints below 2**53");
            return -1;
        }
        ta->bound[i] = PyFloat_CheckExact(b) ? PyFloat_AS_DOUBLE(b) : (double)v;
    }
    State *st = PyType_GetModuleState(Py_TYPE(self));
    if (!st) return -1;
    ta->by_arn = by_arn;
    ta->max_principals = max_p;
    ta->max_total = max_total;
    ta->nb = nb;
    ta->max_slots = max_slots;
    ta->buckets = Py_NewRef(buckets);
    ta->slot_fn = Py_NewRef(slot);
    ta->error_fn = Py_NewRef(error);
    ta->access_fn = Py_NewRef(access);
    ta->prune_fn = Py_NewRef(prune);
    ta->call_type = Py_NewRef(st->call_type);
    memcpy(ta->call_off, st->call_off, sizeof(ta->call_off));
    if (!(ta->add_name = PyUnicode_InternFromString("add")) || !(ta->one = PyLong_FromLong(1)) ||
        !(ta->zero_f = PyFloat_FromDouble(0.0)) || !(ta->slots = PyObject_CallFunction(st->cache_type, "n", max_slots)))
        return -1;
    if (!PyDict_Check(ta->slots)) {
        PyErr_SetString(PyExc_TypeError, "exporter.cache.BoundedCache is a dict");
        return -1;
    }
    ta->changes = PyList_New(0);
    ta->errors = ta->changes ? PyDict_New() : NULL;
    ta->access = ta->errors ? PyDict_New() : NULL;
    ta->batch = ta->access ? PyDict_New() : NULL;
    ta->principals = ta->batch ? PyDict_New() : NULL;
    ta->newest = ta->principals ? PyDict_New() : NULL;
    ta->lag = ta->newest ? PyDict_New() : NULL;
    ta->calls = ta->lag ? PyDict_New() : NULL; /* last: it says the Tally is ready */
    return ta->calls ? 0 : -1;
}

/* The callbacks are usually bound methods of the object that owns the Tally: a cycle the GC breaks. */
static int tally_traverse(PyObject *self, visitproc visit, void *arg) {
    TallyObject *ta = (TallyObject *)self;
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(ta->slot_fn);
    Py_VISIT(ta->error_fn);
    Py_VISIT(ta->access_fn);
    Py_VISIT(ta->prune_fn);
    Py_VISIT(ta->calls);
    Py_VISIT(ta->errors);
    Py_VISIT(ta->access);
    Py_VISIT(ta->batch);
    Py_VISIT(ta->principals);
    Py_VISIT(ta->newest);
    Py_VISIT(ta->lag);
    Py_VISIT(ta->slots);
    Py_VISIT(ta->changes);
    Py_VISIT(ta->shared);
    for (int i = 0; i < TALLY_HIT_SLOTS; i++) {
        Py_VISIT(ta->hit_labels[i]);
        Py_VISIT(ta->hit_slot[i]);
    }
    return 0;
}

static int tally_clear(PyObject *self) {
    TallyObject *ta = (TallyObject *)self;
    Py_CLEAR(ta->slot_fn);
    Py_CLEAR(ta->error_fn);
    Py_CLEAR(ta->access_fn);
    Py_CLEAR(ta->prune_fn);
    Py_CLEAR(ta->calls);
    Py_CLEAR(ta->errors);
    Py_CLEAR(ta->access);
    Py_CLEAR(ta->batch);
    Py_CLEAR(ta->principals);
    Py_CLEAR(ta->newest);
    Py_CLEAR(ta->lag);
    Py_CLEAR(ta->slots);
    Py_CLEAR(ta->changes);
    Py_CLEAR(ta->shared);
    Py_CLEAR(ta->buckets);
    Py_CLEAR(ta->call_type);
    Py_CLEAR(ta->add_name);
    Py_CLEAR(ta->one);
    Py_CLEAR(ta->zero_f);
    for (int i = 0; i < TALLY_RUN_SLOTS; i++) {
        Py_CLEAR(ta->run[i].slot);
        Py_CLEAR(ta->run[i].seen);
        Py_CLEAR(ta->run[i].whos);
    }
    tally_hits_clear(ta);
    return 0;
}

static void tally_dealloc(PyObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    tally_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *tally_forget(PyObject *self, PyObject *Py_UNUSED(ignored)) {
    TallyObject *ta = (TallyObject *)self;
    if (!ta->calls) {
        PyErr_SetString(PyExc_TypeError, "Tally.__init__ was not called");
        return NULL;
    }
    PyDict_Clear(ta->slots);
    tally_hits_clear(ta);
    PyDict_Clear(ta->access);
    ta->access_n = 0;
    ta->epoch++;
    Py_RETURN_NONE;
}

static PyMethodDef TALLY_METHODS[] = {
    {"forget", tally_forget, METH_NOARGS, "Empty the caches (slots, access): on restore."},
    {"add_calls", (PyCFunction)(void (*)(void))tally_add_calls, METH_FASTCALL,
     "add_calls(calls, now, source) -> int\n"
     "Count the calls (exporter.model.Call) into the tables; returns how many. `changes` then holds the\n"
     "positions of those whose slot says they may change a queue's policy or encryption."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef TALLY_MEMBERS[] = {
    {"calls", T_OBJECT, offsetof(TallyObject, calls), READONLY, "key → count"},
    {"errors", T_OBJECT, offsetof(TallyObject, errors), READONLY, "errors key → count"},
    {"batch", T_OBJECT, offsetof(TallyObject, batch), READONLY, "key[:4] → batch entries"},
    {"principals", T_OBJECT, offsetof(TallyObject, principals), READONLY, "qkey → {principal: newest time}"},
    {"newest", T_OBJECT, offsetof(TallyObject, newest), READONLY, "(account, region) → newest event time"},
    {"lag", T_OBJECT, offsetof(TallyObject, lag), READONLY, "source → [bucket counts..., +Inf, sum]"},
    {"slots", T_OBJECT, offsetof(TallyObject, slots), READONLY, "labels → slot (filled by `slot`)"},
    {"access", T_OBJECT, offsetof(TallyObject, access), READONLY, "qkey → {principal: access cells}"},
    {"changes", T_OBJECT, offsetof(TallyObject, changes), READONLY, "positions of the last calls that may change a queue"},
    {"shared", T_OBJECT, offsetof(TallyObject, shared), 0, "None, or what gets add(*qkey, t, principal)"},
    {"principal_count", T_PYSSIZET, offsetof(TallyObject, principal_count), 0, "principals held, all queues"},
    {"by_arn", T_INT, offsetof(TallyObject, by_arn), READONLY, NULL},
    {"max_principals", T_PYSSIZET, offsetof(TallyObject, max_principals), READONLY, NULL},
    {"max_principals_total", T_PYSSIZET, offsetof(TallyObject, max_total), READONLY, NULL},
    {"buckets", T_OBJECT, offsetof(TallyObject, buckets), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot TALLY_SLOTS[] = {
    {Py_tp_doc, "Tally(*, by_arn, max_principals, max_principals_total, buckets, max_slots, slot, error_key,\n"
                "access_keys, prune): the metrics' per-call loop and its tables (see the comment in _native.c)."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, tally_init},
    {Py_tp_dealloc, tally_dealloc},
    {Py_tp_traverse, tally_traverse},
    {Py_tp_clear, tally_clear},
    {Py_tp_methods, TALLY_METHODS},
    {Py_tp_members, TALLY_MEMBERS},
    {0, NULL},
};

static PyType_Spec TALLY_SPEC = {
    "exporter._native.Tally", sizeof(TallyObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE, TALLY_SLOTS,
};

/* exporter.model.Call and the offsets of its fields (T_OBJECT_EX slots of a msgspec Struct). */
static int load_call_type(State *st) {
    PyObject *model = PyImport_ImportModule("exporter.model");
    if (!model) return -1;
    st->call_type = PyObject_GetAttrString(model, "Call");
    Py_DECREF(model);
    if (!st->call_type) return -1;
    if (!PyType_Check(st->call_type)) {
        PyErr_SetString(PyExc_ImportError, "_native: exporter.model.Call is not a type");
        return -1;
    }
    PyMemberDef *m = PyType_GetSlot((PyTypeObject *)st->call_type, Py_tp_members);
    for (int f = 0; f < NCALL; f++) {
        st->call_off[f] = -1;
        for (PyMemberDef *d = m; d && d->name; d++)
            if (strcmp(d->name, CALL_FIELD[f]) == 0 && d->type == T_OBJECT_EX) st->call_off[f] = d->offset;
        if (st->call_off[f] < 0) {
            PyErr_Format(PyExc_ImportError, "_native: exporter.model.Call has no slot %s", CALL_FIELD[f]);
            return -1;
        }
    }
    return 0;
}

static int module_exec(PyObject *module) {
    const uint16_t one = 1;
    if (*(const unsigned char *)&one != 1) {
        PyErr_SetString(PyExc_ImportError, "_native: big-endian hosts use the Python encoder");
        return -1;
    }
    Names *tables[] = {&N_ARN, &N_ISSUER, &N_PARAMS, &N_RESOURCE, &N_IDENT, &N_BEHALF, &N_TOP, &N_DOC};
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        if (names_init(tables[i])) {
            PyErr_SetString(PyExc_ImportError, "_native: two key names share a slot");
            return -1;
        }
    }
    State *st = state_of(module);
    if (load_call_type(st)) return -1;
    PyObject *cache = PyImport_ImportModule("exporter.cache");
    if (!cache) return -1;
    st->cache_type = PyObject_GetAttrString(cache, "BoundedCache");
    Py_DECREF(cache);
    if (!st->cache_type) return -1;
    st->scanner_type = PyType_FromModuleAndSpec(module, &SCANNER_SPEC, NULL);
    if (!st->scanner_type) return -1;
    if (PyModule_AddObjectRef(module, "Scanner", st->scanner_type)) return -1;
    st->encoder_type = PyType_FromModuleAndSpec(module, &ENCODER_SPEC, NULL);
    if (!st->encoder_type) return -1;
    if (PyModule_AddObjectRef(module, "LogEncoder", st->encoder_type)) return -1;
    st->tally_type = PyType_FromModuleAndSpec(module, &TALLY_SPEC, NULL);
    if (!st->tally_type) return -1;
    return PyModule_AddObjectRef(module, "Tally", st->tally_type);
}

static int module_traverse(PyObject *module, visitproc visit, void *arg) {
    State *st = state_of(module);
    Py_VISIT(st->call_type);
    Py_VISIT(st->cache_type);
    Py_VISIT(st->scanner_type);
    Py_VISIT(st->encoder_type);
    Py_VISIT(st->tally_type);
    return 0;
}

static int module_clear(PyObject *module) {
    State *st = state_of(module);
    Py_CLEAR(st->call_type);
    Py_CLEAR(st->cache_type);
    Py_CLEAR(st->scanner_type);
    Py_CLEAR(st->encoder_type);
    Py_CLEAR(st->tally_type);
    return 0;
}

static void module_free(void *module) {
    module_clear((PyObject *)module);
}

static PyModuleDef_Slot SLOTS[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "_native", "The exporter's hot loops in C (see _native.c).", sizeof(State),
    NULL, SLOTS, module_traverse, module_clear, module_free,
};

PyMODINIT_FUNC PyInit__native(void) {
    return PyModuleDef_Init(&MODULE);
}
