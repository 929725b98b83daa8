/* The exporter's two hot loops in C, both accelerators with a pure-Python twin that decides whenever
   this code declines an input (tests/test_native.py and tests/test_fastpath.py compare the two):

   1. scan_calls: a `{"Records": [...]}` delivery → the fields the metrics read of each SQS API call
      (exporter.decode.record.SqsRecord), without building the other records at all.
   2. encode_body / encode_record: one CloudTrail record → its OTLP log record.

   --- 2. One CloudTrail record (JSON bytes) → the OTLP KeyValueList its log record body carries, in one pass.

   The pure-Python encoder (exporter/sinks/otlp.py + LogSink.body) decodes the record into ~100 Python
   objects and encodes them again; this writes the same bytes straight from the JSON text. It is an
   accelerator only: for any input it does not handle exactly (malformed JSON, deep nesting, a lone
   surrogate, a float that overflows) it raises ValueError and the caller uses the Python encoder, so
   the two never disagree (tests/test_native.py checks byte equality).

   Wire format (opentelemetry/proto/common/v1/common.proto):
     KeyValueList.values = 1 (KeyValue)     KeyValue: key = 1 (string), value = 2 (AnyValue)
     AnyValue: string_value = 1, bool_value = 2, int_value = 3, double_value = 4,
               array_value = 5 (ArrayValue: values = 1), kvlist_value = 6
   JSON null is the empty AnyValue; an integer outside int64 is a string (as the Python encoder does).

   Redaction follows exporter.sinks.logs.Redactor: sourceIPAddress / userAgent at the top level,
   userIdentity.accessKeyId, and named keys anywhere inside requestParameters / responseElements;
   each is kept, dropped, or replaced by hasher(value) (value as str, or decoded by `decode`). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MAX_DEPTH 128

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
    int native_hash;   /* strings are hashed here, with hkey (HMAC) or without (plain SHA-256) */
    const unsigned char *hkey;
    Py_ssize_t hkeylen;
    PyObject *decode;  /* callable(bytes) -> object */
    Buf capv;          /* the AnyValue bytes of captured values */
    Py_ssize_t cap_off[NCAP], cap_len[NCAP];
    int pyerr;         /* a Python exception is set (not a parse failure) */
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
static unsigned char STOP[256];

static void init_stop(void) {
    for (int c = 0; c < 256; c++) STOP[c] = c == '"' || c == '\\' || c < 0x20 || c >= 0x80;
}

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

/* skip_value without a call for the commonest value, a string (the call's prologue had cost a tenth of
   skipping). */
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

/* SHA-256 (FIPS 180-4) for redaction: `sha256:` + the first 16 bytes of SHA-256(value), or of
   HMAC-SHA256(key, value) (RFC 2104), in hex, as exporter.sinks.logs.Redactor.hash writes it for a
   string. Calling back into Python's hashlib cost more than the rest of a record's encoding. */
typedef struct {
    uint32_t h[8];
    uint64_t n; /* bytes absorbed */
    unsigned char buf[64];
    size_t used;
} Sha;

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* The same compression function with the x86 SHA extensions (Intel's published sequence: four rounds
   per pair of sha256rnds2, the message schedule by sha256msg1/msg2); chosen at run time when the CPU
   has them. tests/test_native.py compares the digests with hashlib's at every padding length. */
__attribute__((target("sha,sse4.1"))) static void sha_block_ni(Sha *c, const unsigned char *p) {
    const __m128i MASK = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i tmp = _mm_loadu_si128((const __m128i *)&c->h[0]);   /* a b c d */
    __m128i st1 = _mm_loadu_si128((const __m128i *)&c->h[4]);   /* e f g h */
    tmp = _mm_shuffle_epi32(tmp, 0xB1);                          /* c d a b -> cdab */
    st1 = _mm_shuffle_epi32(st1, 0x1B);                          /* h g f e */
    __m128i st0 = _mm_alignr_epi8(tmp, st1, 8);                  /* ABEF */
    st1 = _mm_blend_epi16(st1, tmp, 0xF0);                       /* CDGH */
    __m128i abef = st0, cdgh = st1, msg, m[4];
#define RND4(mi, k)                                                                                  \
    msg = _mm_add_epi32(mi, _mm_loadu_si128((const __m128i *)&K256[k]));                             \
    st1 = _mm_sha256rnds2_epu32(st1, st0, msg);                                                      \
    st0 = _mm_sha256rnds2_epu32(st0, st1, _mm_shuffle_epi32(msg, 0x0E));
    for (int i = 0; i < 4; i++) m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), MASK);
    RND4(m[0], 0)
    RND4(m[1], 4)
    m[0] = _mm_sha256msg1_epu32(m[0], m[1]);
    RND4(m[2], 8)
    m[1] = _mm_sha256msg1_epu32(m[1], m[2]);
    /* each group of four rounds, then the schedule: the next group's words (msg2) and a later one's
       first half (msg1); the last groups compute a few words nobody reads */
    for (int g = 3; g < 16; g++) {
        __m128i *cur = &m[g & 3], *prev = &m[(g + 3) & 3], *next = &m[(g + 1) & 3];
        RND4(*cur, 4 * g)
        *next = _mm_sha256msg2_epu32(_mm_add_epi32(*next, _mm_alignr_epi8(*cur, *prev, 4)), *cur);
        *prev = _mm_sha256msg1_epu32(*prev, *cur);
    }
#undef RND4
    st0 = _mm_add_epi32(st0, abef);
    st1 = _mm_add_epi32(st1, cdgh);
    tmp = _mm_shuffle_epi32(st0, 0x1B);                          /* FEBA */
    st1 = _mm_shuffle_epi32(st1, 0xB1);                          /* DCHG */
    st0 = _mm_blend_epi16(tmp, st1, 0xF0);                       /* DCBA */
    st1 = _mm_alignr_epi8(st1, tmp, 8);                          /* ABEF -> HGFE */
    _mm_storeu_si128((__m128i *)&c->h[0], st0);
    _mm_storeu_si128((__m128i *)&c->h[4], st1);
}
static int HAVE_SHA_NI = -1;
#endif

static void sha_block_c(Sha *c, const unsigned char *p);

static void sha_block(Sha *c, const unsigned char *p) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (HAVE_SHA_NI < 0) {
        __builtin_cpu_init();
        HAVE_SHA_NI = __builtin_cpu_supports("sha") && __builtin_cpu_supports("sse4.1") && !getenv("CTSQS_NO_SHA_NI");
    }
    if (HAVE_SHA_NI) {
        sha_block_ni(c, p);
        return;
    }
#endif
    sha_block_c(c, p);
}

static void sha_block_c(Sha *c, const unsigned char *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4], f = c->h[5], g = c->h[6], h = c->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = cc;
        cc = b;
        b = a;
        a = t1 + t2;
    }
    c->h[0] += a;
    c->h[1] += b;
    c->h[2] += cc;
    c->h[3] += d;
    c->h[4] += e;
    c->h[5] += f;
    c->h[6] += g;
    c->h[7] += h;
}

static void sha_init(Sha *c) {
    static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, H0, sizeof(H0));
    c->n = 0;
    c->used = 0;
}

static void sha_update(Sha *c, const unsigned char *p, size_t n) {
    if (!n) return; /* p may be NULL then */
    c->n += n;
    if (c->used) {
        size_t take = 64 - c->used < n ? 64 - c->used : n;
        memcpy(c->buf + c->used, p, take);
        c->used += take;
        p += take;
        n -= take;
        if (c->used < 64) return;
        sha_block(c, c->buf);
        c->used = 0;
    }
    for (; n >= 64; p += 64, n -= 64) sha_block(c, p);
    memcpy(c->buf, p, n);
    c->used = n;
}

static void sha_final(Sha *c, unsigned char out[32]) {
    uint64_t bits = c->n * 8;
    unsigned char pad[72] = {0x80};
    size_t padn = (c->used < 56 ? 56 : 120) - c->used;
    for (int i = 0; i < 8; i++) pad[padn + i] = (unsigned char)(bits >> (56 - 8 * i));
    sha_update(c, pad, padn + 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(c->h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(c->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(c->h[i] >> 8);
        out[4 * i + 3] = (unsigned char)c->h[i];
    }
}

/* `sha256:` + 32 hex digits of the (keyed) digest of d, onto b as an AnyValue string. */
static int put_hashed(Buf *b, const unsigned char *key, Py_ssize_t keylen, const char *d, Py_ssize_t n) {
    unsigned char digest[32];
    Sha c;
    if (key) {
        unsigned char block[64] = {0};
        if (keylen) memcpy(block, key, (size_t)keylen); /* <= 64 bytes: Python hashes longer keys first */
        for (int i = 0; i < 64; i++) block[i] ^= 0x36;
        sha_init(&c);
        sha_update(&c, block, 64);
        sha_update(&c, (const unsigned char *)d, (size_t)n);
        sha_final(&c, digest);
        for (int i = 0; i < 64; i++) block[i] ^= 0x36 ^ 0x5c;
        sha_init(&c);
        sha_update(&c, block, 64);
        sha_update(&c, digest, 32);
        sha_final(&c, digest);
    } else {
        sha_init(&c);
        sha_update(&c, (const unsigned char *)d, (size_t)n);
        sha_final(&c, digest);
    }
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
   fails), which had been a third of the scanner's key matching. */
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
            if (action == HASH && ps->s < ps->end && *ps->s == '"' && ps->native_hash) {
                Py_ssize_t mark = ps->tmp.len;
                r = read_string(ps, &ps->tmp);
                if (!r) r = put_hashed(b, ps->hkey, ps->hkeylen, ps->tmp.p + mark, ps->tmp.len - mark);
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

/* Buffers kept between calls (fresh multi-KB buffers per record cost page faults and cache misses).
   Callbacks (hasher, decode) may let another thread in: a call that finds them taken uses its own. */
static Buf SPARE[3];
static int spare_busy;

static void take_buffers(P *ps, int *mine) {
    *mine = !spare_busy;
    if (*mine) {
        spare_busy = 1;
        ps->out = SPARE[0];
        ps->tmp = SPARE[1];
        ps->capv = SPARE[2];
        ps->out.len = ps->tmp.len = ps->capv.len = 0;
    }
}

static void give_buffers(P *ps, int mine) {
    Buf *mine_bufs[3] = {&ps->out, &ps->tmp, &ps->capv};
    for (int i = 0; i < 3; i++) {
        Buf *b = mine_bufs[i];
        if (mine && b->cap <= (1 << 20)) { /* an odd huge record does not pin its buffer */
            SPARE[i] = *b;
        } else {
            PyMem_Free(b->p);
            if (mine) SPARE[i] = (Buf){NULL, 0, 0};
        }
    }
    if (mine) spare_busy = 0;
}

/* Arguments 1-6 of both functions: source_ip, user_agent, access_key_id, params, hasher, decode (args[0] is raw). */
static int parse_settings(P *ps, PyObject *const *args) {
    ps->act_ip = (int)PyLong_AsLong(args[1]);
    ps->act_ua = (int)PyLong_AsLong(args[2]);
    ps->act_key = (int)PyLong_AsLong(args[3]);
    if (PyErr_Occurred()) return -1;
    if (!PyTuple_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "params must be a tuple");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(args[4]); i++) {
        PyObject *pair = PyTuple_GET_ITEM(args[4], i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(pair, 0)) ||
            !PyLong_Check(PyTuple_GET_ITEM(pair, 1))) {
            PyErr_SetString(PyExc_TypeError, "params must be a tuple of (bytes, int) pairs");
            return -1;
        }
    }
    ps->params = args[4];
    /* hasher, or (hasher, key): strings are then hashed here (key: HMAC key of <= 64 bytes, or None) */
    PyObject *h = args[5];
    ps->hasher = h;
    if (PyTuple_Check(h) && PyTuple_GET_SIZE(h) == 2) {
        PyObject *key = PyTuple_GET_ITEM(h, 1);
        ps->hasher = PyTuple_GET_ITEM(h, 0);
        ps->native_hash = 1;
        if (key != Py_None) {
            if (!PyBytes_Check(key) || PyBytes_GET_SIZE(key) > 64) {
                PyErr_SetString(PyExc_TypeError, "the HMAC key must be bytes of at most 64");
                return -1;
            }
            ps->hkey = (const unsigned char *)PyBytes_AS_STRING(key);
            ps->hkeylen = PyBytes_GET_SIZE(key);
        }
    }
    ps->decode = args[6];
    return 0;
}

static int open_raw(P *ps, PyObject *obj, Py_buffer *raw) {
    if (PyObject_GetBuffer(obj, raw, PyBUF_SIMPLE) < 0) return -1;
    ps->start = ps->s = (const unsigned char *)raw->buf;
    ps->end = ps->s + raw->len;
    return 0;
}

/* The first 7 arguments of both functions: raw, source_ip, user_agent, access_key_id, params, hasher, decode. */
static int parse_common(P *ps, PyObject *const *args, Py_buffer *raw) {
    return parse_settings(ps, args) ? -1 : open_raw(ps, args[0], raw);
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

static PyObject *encode_body(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    Py_buffer raw;
    P ps;
    memset(&ps, 0, sizeof(ps));
    /* positional only (METH_FASTCALL: argument parsing is a visible share of a 1 KB record) */
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "encode_body takes 7 arguments");
        return NULL;
    }
    if (parse_common(&ps, args, &raw)) return NULL;
    int mine;
    take_buffers(&ps, &mine);
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
    give_buffers(&ps, mine);
    return result;
}

/* The whole ScopeLogs.log_records (= 2) element: what otlp.RequestBuilder.record_field(otlp.log_record(
   time_ns, observed_ns, severity..., body, attributes, event_name)) writes, with `head` the encoded
   severity fields, `attrs` the attributes that precede the captured ones and `tail` the event_name field. */
/* One record onto ps->out (taken buffers, len 0): the LogRecord element, starting at *start. `attrs` are
   the parts of the attributes that precede the captured ones. Releases raw. 0, or the encoder's error. */
typedef struct {
    const char *p;
    Py_ssize_t n;
} Part;

static int record_into(P *ps, Py_buffer *raw, uint64_t t, uint64_t o, Part head, const Part *attrs, int nattrs,
                       Part tail, Py_ssize_t *start) {
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

static PyObject *encode_record(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    Py_buffer raw;
    P ps;
    memset(&ps, 0, sizeof(ps));
    if (nargs != 12) {
        PyErr_SetString(PyExc_TypeError, "encode_record takes 12 arguments");
        return NULL;
    }
    unsigned long long t = PyLong_AsUnsignedLongLong(args[7]);
    unsigned long long o = t == (unsigned long long)-1 && PyErr_Occurred() ? 0 : PyLong_AsUnsignedLongLong(args[8]);
    if (PyErr_Occurred()) return NULL;
    for (int i = 9; i < 12; i++) {
        if (!PyBytes_Check(args[i])) {
            PyErr_SetString(PyExc_TypeError, "head, attrs and tail must be bytes");
            return NULL;
        }
    }
    if (parse_common(&ps, args, &raw)) return NULL;
    int mine;
    take_buffers(&ps, &mine);
    Py_ssize_t start;
    Part attrs = part_of(args[10]);
    int r = record_into(&ps, &raw, t, o, part_of(args[9]), &attrs, 1, part_of(args[11]), &start);
    PyObject *result = NULL;
    if (!r)
        result = PyBytes_FromStringAndSize(ps.out.p + start, ps.out.len - start);
    else
        set_error(&ps, r);
    give_buffers(&ps, mine);
    return result;
}


/* ------------------------------------------------------------------------------------------------------
   1. scan_calls(data, keep_raw) -> ([(dkey, ikey, errorCode, entries, eventTime, raw), ...], other) | None

   dkey = (recipientAccountId, awsRegion, eventName, eventCategory, managementEvent, queueUrl, queueName,
           sourceArn, (resources[].ARN, ...) | None)      everything the queue/category derivation reads
   ikey = (type, arn, principalId, accountId, userName, invokedBy, sessionContext.sessionIssuer.arn) | None
   entries = len(requestParameters.entries) (0 without), raw = the record's JSON (bytes) when keep_raw.

   The types are SqsRecord's: a wrong type, a duplicate key among those read, a non-object record, or
   anything else unusual returns None and exporter.pipeline's general path decides, record by record.
   Other records are skipped after their eventSource / eventType (which must be strings or null). */

enum { F_SOURCE, F_NAME, F_TIME, F_TYPE, F_REGION, F_RECIPIENT, F_ERROR, F_CATEGORY, F_MGMT, F_IDENT, F_PARAMS,
       F_RESOURCES, NF };
static const char *FNAME[NF] = {"eventSource", "eventName", "eventTime", "eventType", "awsRegion",
                                "recipientAccountId", "errorCode", "eventCategory", "managementEvent",
                                "userIdentity", "requestParameters", "resources"};

#define INTERN_SLOTS 16384
static PyObject *INTERN[INTERN_SLOTS];

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
static PyObject *intern_str(const char *d, Py_ssize_t n) {
    if (n > 256) return PyUnicode_DecodeUTF8(d, n, "strict");
    PyObject **slot = &INTERN[bytes_hash(d, n) & (INTERN_SLOTS - 1)];
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

/* str or null at ps->s → *out (new reference). -1: another type or bad JSON; -2: Python error. */
static int opt_str(P *ps, PyObject **out) {
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
    *out = intern_str(ps->tmp.p + mark, ps->tmp.len - mark);
    ps->tmp.len = mark;
    return *out ? 0 : -2;
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
enum { I_TYPE, I_ARN, I_PRINCIPAL, I_ACCOUNT, I_USER, I_INVOKED, I_CONTEXT, NI };
static const char *INAME[NI] = {"type", "arn", "principalId", "accountId", "userName", "invokedBy", "sessionContext"};
static const char *ARN_NAME[1] = {"arn"};
static const char *ISSUER_NAME[1] = {"sessionIssuer"};
static const char *ENTRIES_NAMES[4] = {"queueUrl", "queueName", "sourceArn", "entries"};
static const char *RESOURCE_NAME[1] = {"ARN"};
static Names N_ARN = {ARN_NAME, 1, {0}, {0}}, N_ISSUER = {ISSUER_NAME, 1, {0}, {0}},
             N_PARAMS = {ENTRIES_NAMES, 4, {0}, {0}}, N_RESOURCE = {RESOURCE_NAME, 1, {0}, {0}},
             N_IDENT = {INAME, NI, {0}, {0}}, N_TOP = {FNAME, NF, {0}, {0}};

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

static int on_ident(P *ps, int field, void *ctx) {
    Fields *f = ctx;
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
static PyObject *intern_tuple(PyObject **v, int n);

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
        *out = n > 0 && n <= 16 ? intern_tuple(((PyListObject *)list)->ob_item, (int)n) : PyList_AsTuple(list);
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
#define TUPLE_SLOTS 4096
static PyObject *TUPLES[TUPLE_SLOTS];

static PyObject *intern_tuple(PyObject **v, int n) {
    uint64_t h = (uint64_t)n * 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < n; i++) {
        h ^= (uint64_t)(uintptr_t)(v[i] ? v[i] : Py_None);
        h *= 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
    }
    PyObject **slot = &TUPLES[h & (TUPLE_SLOTS - 1)];
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

/* The row of an SQS record whose fields are in rc (reading those found before eventSource). */
static int sqs_row(P *ps, Rec *rc, const unsigned char *from, const unsigned char *to, int keep_raw,
                   PyObject **row) {
    int r = 0;
    for (int f = F_NAME; f < NF && !r; f++) {
        if (!rc->at[f]) continue;
        ps->s = rc->at[f];
        r = read_field(ps, f, rc);
    }
    if (r) return r;
    PyObject *d[9] = {rc->v[F_RECIPIENT], rc->v[F_REGION], rc->v[F_NAME], rc->v[F_CATEGORY], rc->v[F_MGMT],
                      rc->params.v[0],    rc->params.v[1], rc->params.v[2], rc->resources};
    PyObject *dkey = intern_tuple(d, 9);
    PyObject *ikey = rc->has_ident ? intern_tuple(rc->ident.v, NI) : Py_NewRef(Py_None);
    PyObject *raw = keep_raw ? PyBytes_FromStringAndSize((const char *)from, to - from) : Py_NewRef(Py_None);
    PyObject *entries = PyLong_FromSsize_t(rc->params.count);
    if (dkey && ikey && raw && entries) {
        PyObject *row_v[6] = {dkey, ikey, rc->v[F_ERROR], entries, rc->v[F_TIME], raw};
        *row = tuple_of(row_v, 6);
    }
    Py_XDECREF(entries);
    Py_XDECREF(dkey);
    Py_XDECREF(ikey);
    Py_XDECREF(raw);
    return *row ? 0 : -2;
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
            r = sqs_row(ps, &rc, from, to, keep_raw, &row);
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

static PyObject *scan_calls(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "scan_calls takes 2 arguments");
        return NULL;
    }
    int keep_raw = PyObject_IsTrue(args[1]);
    if (keep_raw < 0) return NULL;
    Py_buffer data;
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0) return NULL;
    P ps;
    memset(&ps, 0, sizeof(ps));
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
    PyObject *result = NULL;
    if (!r) {
        result = Py_BuildValue("(On)", top.rows, top.other);
    } else if (r == -1) {
        PyErr_Clear(); /* declined: the general path decides */
        result = Py_NewRef(Py_None);
    } else if (!PyErr_Occurred()) {
        PyErr_NoMemory();
    }
    Py_XDECREF(top.rows);
    return result;
}

/* ------------------------------------------------------------------------------------------------------
   2. The per-call Python of the metrics path, as C API calls on the same objects (see scan.calls_of and
   metrics.Aggregate.add_calls, whose loops these are; the Python versions stay as the reference and
   decide whatever these hand back).

   calls_of(rows, derived, principals, times, derive, principals_of, parse_time) -> [Call, ...] */

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

/* Identity caches in front of the dicts: key object → the value the dict held for it. An entry holds
   strong references to both, so its key cannot be freed and its address reused while it is there.
   Only values read from the dicts (or computed from the key's text alone) go in: the same answers. */
#define ID_SLOTS 4096
typedef struct {
    PyObject *key, *val;
} IdEntry;
static IdEntry ID_DERIVED[ID_SLOTS], ID_WHO[ID_SLOTS], ID_TIME[ID_SLOTS];

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

static PyObject *get_or_call(IdEntry *ids, PyObject *cache, PyObject *key, PyObject *fn, PyObject *arg2) {
    IdEntry *e = id_entry(ids, key);
    if (e->key == key) return Py_NewRef(e->val);
    PyObject *hit = PyDict_GetItemWithError(cache, key); /* borrowed */
    if (hit && PyObject_IsTrue(hit) > 0) {
        id_put(e, key, hit);
        return Py_NewRef(hit);
    }
    if (PyErr_Occurred()) return NULL;
    return arg2 ? PyObject_CallFunctionObjArgs(fn, key, arg2, NULL) : PyObject_CallOneArg(fn, key);
}

static PyObject *calls_of(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 7 || !PyList_Check(args[0]) || !PyDict_Check(args[1]) || !PyDict_Check(args[2]) ||
        !PyDict_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "calls_of(rows, derived, principals, times, derive, principals_of, parse_time)");
        return NULL;
    }
    PyObject *rows = args[0], *derived = args[1], *principals = args[2], *times = args[3];
    PyObject *derive = args[4], *principals_of = args[5], *parse_time = args[6];
    Py_ssize_t n = PyList_GET_SIZE(rows);
    PyObject *out = PyList_New(n);
    if (!out) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 6) {
            PyErr_SetString(PyExc_TypeError, "a row is a 6-tuple");
            goto fail;
        }
        PyObject *dkey = PyTuple_GET_ITEM(row, 0), *ikey = PyTuple_GET_ITEM(row, 1);
        PyObject *error = PyTuple_GET_ITEM(row, 2), *entries = PyTuple_GET_ITEM(row, 3);
        PyObject *etime = PyTuple_GET_ITEM(row, 4);
        PyObject *d = get_or_call(ID_DERIVED, derived, dkey, derive, ikey);
        if (!d) goto fail;
        PyObject *who = get_or_call(ID_WHO, principals, ikey, principals_of, NULL);
        if (!who) {
            Py_DECREF(d);
            goto fail;
        }
        PyObject *t = NULL;
        int etrue = PyObject_IsTrue(etime);
        double secs;
        Py_ssize_t tn;
        IdEntry *te = id_entry(ID_TIME, etime);
        const char *ts = NULL;
        if (te->key == etime) {
            t = Py_NewRef(te->val);
        } else if ((ts = PyUnicode_Check(etime) ? PyUnicode_AsUTF8AndSize(etime, &tn) : NULL) &&
                   iso_z_seconds(ts, tn, &secs)) {
            t = PyFloat_FromDouble(secs);
            if (!t) etrue = -1;
            else id_put(te, etime, t);
        } else if (etrue > 0) {
            PyErr_Clear(); /* (a str that is not UTF-8 only takes the slow path) */
            t = PyDict_GetItemWithError(times, etime);
            if (t == Py_None) t = NULL;
            Py_XINCREF(t);
        }
        if (!t && !PyErr_Occurred() && etrue >= 0) t = PyObject_CallOneArg(parse_time, etime);
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
        PyObject *call = (batch || zero) ? PyTuple_New(7) : NULL;
        if (call) {
            PyTuple_SET_ITEM(call, 0, Py_NewRef(PyTuple_GET_ITEM(d, 0)));
            PyTuple_SET_ITEM(call, 1, Py_NewRef(err_true ? error : Py_None));
            PyTuple_SET_ITEM(call, 2, batch ? Py_NewRef(entries) : zero);
            PyTuple_SET_ITEM(call, 3, t);
            PyTuple_SET_ITEM(call, 4, Py_NewRef(PyTuple_GET_ITEM(who, 0)));
            PyTuple_SET_ITEM(call, 5, Py_NewRef(PyTuple_GET_ITEM(who, 1)));
            PyTuple_SET_ITEM(call, 6, Py_NewRef(PyTuple_GET_ITEM(d, 1)));
        } else {
            Py_DECREF(t);
        }
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

/* add_calls(calls, start, slots, slot, table, errors, batch, newest, principals, prune, max_principals,
             lag_counts, buckets, now, by_arn, kept_flags) -> (kept, stop)
   Counts calls[start:] as Aggregate.add_calls does (without shared state). It stops at the first call
   it would not count exactly as Python does (a time that is not a float): `stop` is that index, or
   len(calls); Python counts from there. */

static int bump(PyObject *d, PyObject *key, PyObject *by) {
    PyObject *old = PyDict_GetItemWithError(d, key);
    if (!old && PyErr_Occurred()) return -1;
    PyObject *v = old ? PyNumber_Add(old, by) : Py_NewRef(by);
    if (!v) return -1;
    int r = PyDict_SetItem(d, key, v);
    Py_DECREF(v);
    return r;
}

static PyObject *add_calls(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 16 || !PyList_Check(args[0]) || !PyDict_Check(args[2]) || !PyDict_Check(args[4]) ||
        !PyDict_Check(args[5]) || !PyDict_Check(args[6]) || !PyDict_Check(args[7]) || !PyDict_Check(args[8]) ||
        !PyList_Check(args[11]) || !PyTuple_Check(args[12]) || !PyFloat_Check(args[13]) ||
        (args[15] != Py_None && !PyList_Check(args[15]))) {
        PyErr_SetString(PyExc_TypeError, "add_calls: see the comment in _native.c");
        return NULL;
    }
    PyObject *calls = args[0], *slots = args[2], *slot_fn = args[3], *table = args[4], *errors = args[5];
    PyObject *batch = args[6], *newest = args[7], *principals = args[8], *prune = args[9];
    PyObject *lag = args[11], *buckets = args[12], *flags = args[15];
    Py_ssize_t start = PyLong_AsSsize_t(args[1]), max_p = PyLong_AsSsize_t(args[10]);
    int by_arn = PyObject_IsTrue(args[14]);
    double now = PyFloat_AS_DOUBLE(args[13]);
    if (PyErr_Occurred() || by_arn < 0) return NULL;
    Py_ssize_t nb = PyTuple_GET_SIZE(buckets);
    if (PyList_GET_SIZE(lag) != nb + 2) {
        PyErr_SetString(PyExc_ValueError, "lag_counts has len(buckets) + 2 items");
        return NULL;
    }
    double bound[64];
    if (nb > 64) {
        PyErr_SetString(PyExc_ValueError, "at most 64 lag buckets");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nb; i++) {
        bound[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(buckets, i));
        if (bound[i] == -1.0 && PyErr_Occurred()) return NULL;
    }
    for (Py_ssize_t i = 0; i < nb + 2; i++) {
        if (!PyFloat_CheckExact(PyList_GET_ITEM(lag, i))) { /* Python keeps them floats */
            PyErr_SetString(PyExc_TypeError, "lag_counts holds floats");
            return NULL;
        }
    }
    PyObject *one = PyLong_FromLong(1);
    if (!one) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(calls), kept = 0, i;
    for (i = start; i < n; i++) {
        PyObject *call = PyList_GET_ITEM(calls, i);
        if (!PyTuple_Check(call) || PyTuple_GET_SIZE(call) != 7) break;
        PyObject *labels = PyTuple_GET_ITEM(call, 0), *error = PyTuple_GET_ITEM(call, 1);
        PyObject *entries = PyTuple_GET_ITEM(call, 2), *t = PyTuple_GET_ITEM(call, 3);
        PyObject *principal = PyTuple_GET_ITEM(call, by_arn ? 5 : 4);
        if (t != Py_None && !PyFloat_CheckExact(t)) break; /* Python compares and subtracts other kinds */
        PyObject *slot = PyDict_GetItemWithError(slots, labels);
        if (slot) {
            Py_INCREF(slot);
        } else {
            if (PyErr_Occurred()) goto fail;
            slot = PyObject_CallOneArg(slot_fn, labels);
            if (!slot) goto fail;
        }
        if (slot == Py_False) {
            Py_DECREF(slot);
            if (flags != Py_None && PyList_Append(flags, Py_False)) goto fail;
            continue;
        }
        if (!PyTuple_Check(slot) || PyTuple_GET_SIZE(slot) != 3) {
            Py_DECREF(slot);
            PyErr_SetString(PyExc_TypeError, "a slot is (key, qkey, akey)");
            goto fail;
        }
        kept++;
        if (flags != Py_None && PyList_Append(flags, Py_True)) goto fail_slot;
        PyObject *key = PyTuple_GET_ITEM(slot, 0), *qkey = PyTuple_GET_ITEM(slot, 1), *akey = PyTuple_GET_ITEM(slot, 2);
        if (bump(table, key, one)) goto fail_slot;
        if (error != Py_None) {
            if (!PyTuple_Check(qkey) || !PyTuple_Check(key) || PyTuple_GET_SIZE(key) < 5) goto bad_slot;
            Py_ssize_t nq = PyTuple_GET_SIZE(qkey);
            PyObject *ekey = PyTuple_New(nq + 2);
            if (!ekey) goto fail_slot;
            for (Py_ssize_t j = 0; j < nq; j++) PyTuple_SET_ITEM(ekey, j, Py_NewRef(PyTuple_GET_ITEM(qkey, j)));
            PyTuple_SET_ITEM(ekey, nq, Py_NewRef(PyTuple_GET_ITEM(key, 3)));
            PyTuple_SET_ITEM(ekey, nq + 1, Py_NewRef(error));
            int r = bump(errors, ekey, one);
            Py_DECREF(ekey);
            if (r) goto fail_slot;
        }
        int has_entries = PyObject_IsTrue(entries);
        if (has_entries < 0) goto fail_slot;
        if (has_entries) {
            if (!PyTuple_Check(key) || PyTuple_GET_SIZE(key) < 4) goto bad_slot;
            PyObject *bkey = PyTuple_GetSlice(key, 0, 4);
            if (!bkey) goto fail_slot;
            int r = bump(batch, bkey, entries);
            Py_DECREF(bkey);
            if (r) goto fail_slot;
        }
        if (t == Py_None) {
            Py_DECREF(slot);
            continue;
        }
        double tv = PyFloat_AS_DOUBLE(t);
        PyObject *old = PyDict_GetItemWithError(newest, akey);
        if (!old && PyErr_Occurred()) goto fail_slot;
        int later = old ? PyObject_RichCompareBool(t, old, Py_GT) : tv > 0.0;
        if (later < 0 || (later && PyDict_SetItem(newest, akey, t))) goto fail_slot;
        if (principal != Py_None) {
            PyObject *seen = PyDict_GetItemWithError(principals, qkey);
            if (!seen) {
                if (PyErr_Occurred()) goto fail_slot;
                seen = PyDict_New();
                if (!seen) goto fail_slot;
                int r = PyDict_SetItem(principals, qkey, seen);
                Py_DECREF(seen); /* the table holds it */
                if (r) goto fail_slot;
            }
            if (!PyDict_Check(seen)) goto bad_slot;
            PyObject *was = PyDict_GetItemWithError(seen, principal);
            if (!was) {
                if (PyErr_Occurred()) goto fail_slot;
                if (PyDict_GET_SIZE(seen) >= max_p) {
                    Py_INCREF(seen);
                    PyObject *r = PyObject_CallFunctionObjArgs(prune, qkey, seen, NULL);
                    Py_DECREF(seen);
                    if (!r) goto fail_slot;
                    Py_DECREF(r);
                }
                if (PyDict_SetItem(seen, principal, t)) goto fail_slot;
            } else {
                int gt = PyObject_RichCompareBool(t, was, Py_GT);
                if (gt < 0 || (gt && PyDict_SetItem(seen, principal, t))) goto fail_slot;
            }
        }
        /* observe_lag: bisect_left(buckets, lag), then the count and the sum */
        double l = now - tv;
        Py_ssize_t lo = 0, hi = nb;
        while (lo < hi) {
            Py_ssize_t mid = (lo + hi) / 2;
            if (bound[mid] < l) lo = mid + 1;
            else hi = mid;
        }
        PyObject *c = PyFloat_FromDouble(PyFloat_AS_DOUBLE(PyList_GET_ITEM(lag, lo)) + 1.0);
        PyObject *sum = PyFloat_FromDouble(PyFloat_AS_DOUBLE(PyList_GET_ITEM(lag, nb + 1)) + l);
        if (!c || !sum) {
            Py_XDECREF(c);
            Py_XDECREF(sum);
            goto fail_slot;
        }
        PyList_SetItem(lag, lo, c); /* steals */
        PyList_SetItem(lag, nb + 1, sum);
        Py_DECREF(slot);
        continue;
    bad_slot:
        PyErr_SetString(PyExc_TypeError, "unexpected slot or table shape");
    fail_slot:
        Py_DECREF(slot);
        goto fail;
    }
    Py_DECREF(one);
    return Py_BuildValue("(nn)", kept, i);
fail:
    Py_DECREF(one);
    return NULL;
}

/* Records of one export batch, written straight into the bytes object the queue will hold (grown by
   doubling, shrunk to size when sealed): no bytes object per record, and no list of them to join. */
typedef struct {
    PyObject *bytes;
    Py_ssize_t len, cap;
    Py_ssize_t n; /* records */
} Chunk;

static int chunk_put(Chunk *c, const char *p, Py_ssize_t n, Py_ssize_t hint) {
    if (c->len + n > c->cap) {
        Py_ssize_t cap = c->cap ? 2 * c->cap : (hint > 4096 ? hint : 4096);
        while (cap < c->len + n) cap *= 2;
        if (!c->bytes)
            c->bytes = PyBytes_FromStringAndSize(NULL, cap);
        else if (_PyBytes_Resize(&c->bytes, cap))
            c->bytes = NULL; /* (freed by _PyBytes_Resize) */
        if (!c->bytes) return -1;
        c->cap = cap;
    }
    memcpy(PyBytes_AS_STRING(c->bytes) + c->len, p, (size_t)n);
    c->len += n;
    c->n++;
    return 0;
}

/* Append (bytes, records) to out and start an empty chunk. */
static int chunk_seal(Chunk *c, PyObject *out) {
    if (!c->n) return 0;
    if (_PyBytes_Resize(&c->bytes, c->len)) {
        c->bytes = NULL;
        return -1;
    }
    PyObject *item = Py_BuildValue("(Nn)", c->bytes, c->n); /* steals the bytes */
    *c = (Chunk){NULL, 0, 0, 0};
    if (!item) return -1;
    int r = PyList_Append(out, item);
    Py_DECREF(item);
    return r;
}

/* encode_calls(calls, raws, kept, start, kinds, principals, batch_attrs, observed_ns, room_records, room_bytes,
                batch_records, batch_bytes, open_records, open_bytes,
                source_ip, user_agent, access_key_id, params, hasher, decode)
       -> ([(chunk, records), ...], stop, nbytes, open_records, open_bytes)

   LogSink.emit_calls's loop: for calls[start:] that the metrics kept, the LogRecord elements encode_record
   writes, with the attributes the sink caches per kind of call (kinds[(labels, error, urls)] = (attrs,
   head, tail, is_batch)), per batch size (batch_attrs[entries]) and per principal (principals[arn]).
   It stops at `stop` (len(calls) when done) before a call it leaves to Python: a cache miss, a time
   that is not a float in range, the queue's room used up (room_records records, room_bytes bytes), or
   a record the encoder declines or fails on. Python then handles that one call as before.
   The records come concatenated in chunks cut where an export batch ends: the batch open on entry holds
   open_records records of open_bytes bytes, and a batch takes at most batch_records records and
   batch_bytes bytes (a larger record goes alone). The open batch's fill is returned for the next call. */
static PyObject *encode_calls(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 20 || !PyList_Check(args[0]) || !PyList_Check(args[1]) || !PyList_Check(args[2]) ||
        !PyDict_Check(args[4]) || !PyDict_Check(args[5]) || !PyDict_Check(args[6])) {
        PyErr_SetString(PyExc_TypeError, "encode_calls: see the comment in _native.c");
        return NULL;
    }
    PyObject *calls = args[0], *raws = args[1], *kept = args[2], *kinds = args[4], *principals = args[5];
    PyObject *batch_attrs = args[6];
    Py_ssize_t start = PyLong_AsSsize_t(args[3]);
    unsigned long long o = PyLong_AsUnsignedLongLong(args[7]);
    long long room_records = PyLong_AsLongLong(args[8]), room_bytes = PyLong_AsLongLong(args[9]);
    long long batch_records = PyLong_AsLongLong(args[10]), batch_bytes = PyLong_AsLongLong(args[11]);
    long long open_records = PyLong_AsLongLong(args[12]), open_bytes = PyLong_AsLongLong(args[13]);
    if (PyErr_Occurred()) return NULL;
    P base;
    memset(&base, 0, sizeof(base));
    if (parse_settings(&base, args + 13)) return NULL;
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
        PyObject *keep = PyList_GET_ITEM(kept, i);
        if (keep == Py_False) continue;
        if (keep != Py_True || made >= room_records || nbytes > room_bytes) break;
        PyObject *call = PyList_GET_ITEM(calls, i);
        if (!PyTuple_Check(call) || PyTuple_GET_SIZE(call) != 7) break;
        PyObject *labels = PyTuple_GET_ITEM(call, 0), *error = PyTuple_GET_ITEM(call, 1);
        PyObject *entries = PyTuple_GET_ITEM(call, 2), *t = PyTuple_GET_ITEM(call, 3);
        PyObject *principal = PyTuple_GET_ITEM(call, 5), *urls = PyTuple_GET_ITEM(call, 6);
        uint64_t t_ns = 0;
        if (t != Py_None) {
            if (!PyFloat_CheckExact(t)) break;
            double ns = PyFloat_AS_DOUBLE(t) * 1e9; /* int(t * 1e9): truncation, in range only */
            if (!(ns >= 0.0 && ns < 18446744073709551616.0)) break;
            t_ns = (uint64_t)ns;
        }
        PyObject *key = PyTuple_Pack(3, labels, error, urls);
        if (!key) goto fail;
        PyObject *kind = PyDict_GetItemWithError(kinds, key); /* borrowed */
        Py_DECREF(key);
        if (!kind) {
            if (PyErr_Occurred()) goto fail;
            break;
        }
        if (!PyTuple_Check(kind) || PyTuple_GET_SIZE(kind) != 4 || !PyBytes_Check(PyTuple_GET_ITEM(kind, 0)) ||
            !PyBytes_Check(PyTuple_GET_ITEM(kind, 1)) || !PyBytes_Check(PyTuple_GET_ITEM(kind, 2)))
            break;
        Part attrs[3];
        int nattrs = 0;
        attrs[nattrs++] = part_of(PyTuple_GET_ITEM(kind, 0));
        int batch = PyObject_IsTrue(PyTuple_GET_ITEM(kind, 3));
        if (batch < 0) goto fail;
        if (batch) {
            PyObject *a = PyDict_GetItemWithError(batch_attrs, entries);
            if (!a || !PyBytes_Check(a)) {
                if (PyErr_Occurred()) goto fail;
                break;
            }
            attrs[nattrs++] = part_of(a);
        }
        if (principal != Py_None) {
            if (!PyUnicode_Check(principal)) break;
            if (PyUnicode_GET_LENGTH(principal)) {
                PyObject *a = PyDict_GetItemWithError(principals, principal);
                if (!a || !PyBytes_Check(a)) {
                    if (PyErr_Occurred()) goto fail;
                    break;
                }
                attrs[nattrs++] = part_of(a);
            }
        }
        P ps = base;
        Py_buffer raw;
        if (open_raw(&ps, PyList_GET_ITEM(raws, i), &raw)) {
            PyErr_Clear();
            break;
        }
        int mine;
        take_buffers(&ps, &mine);
        Py_ssize_t at;
        int r = record_into(&ps, &raw, t_ns, o, part_of(PyTuple_GET_ITEM(kind, 1)), attrs, nattrs,
                            part_of(PyTuple_GET_ITEM(kind, 2)), &at);
        if (r) {
            give_buffers(&ps, mine);
            PyErr_Clear(); /* Python encodes this one again and reports whatever it finds */
            break;
        }
        Py_ssize_t size = ps.out.len - at;
        if (open_records > 0 && (open_records >= batch_records || open_bytes + size > batch_bytes)) {
            open_records = open_bytes = 0; /* this record starts the next batch */
            if (chunk_seal(&chunk, out)) {
                give_buffers(&ps, mine);
                goto fail;
            }
        }
        /* sized for the rest of the batch (up to 8 MiB), so a chunk is allocated about once */
        long long hint = batch_bytes - open_bytes < room_bytes ? batch_bytes - open_bytes : room_bytes;
        int bad = chunk_put(&chunk, ps.out.p + at, size, (Py_ssize_t)(hint < (8 << 20) ? hint : (8 << 20)) + 4096);
        give_buffers(&ps, mine);
        if (bad) goto fail;
        open_records++;
        open_bytes += size;
        nbytes += size;
        made++;
    }
    if (chunk_seal(&chunk, out)) goto fail;
    return Py_BuildValue("(NnLLL)", out, i, nbytes, open_records, open_bytes);
fail:
    Py_XDECREF(chunk.bytes);
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef METHODS[] = {
    {"scan_calls", (PyCFunction)(void (*)(void))scan_calls, METH_FASTCALL,
     "scan_calls(data, keep_raw) -> ([(dkey, ikey, errorCode, entries, eventTime, raw), ...], other) or None\n"
     "for a {\"Records\": [...]} delivery (see the comment in _native.c)."},
    {"encode_body", (PyCFunction)(void (*)(void))encode_body, METH_FASTCALL,
     "encode_body(raw, source_ip, user_agent, access_key_id, params, hasher, decode)\n"
     "-> (KeyValueList bytes of the body, LogRecord.attributes elements of client.address,\n"
     "user_agent.original, aws.cloudtrail.read_only, aws.cloudtrail.user_identity.type, aws.request_id,\n"
     "aws.cloudtrail.event_id)\n"
     "Actions: 0 keep, 1 drop, 2 hash. Raises ValueError on input it does not handle."},
    {"encode_record", (PyCFunction)(void (*)(void))encode_record, METH_FASTCALL,
     "encode_record(raw, source_ip, user_agent, access_key_id, params, hasher, decode, time_ns, observed_ns,\n"
     "head, attrs, tail) -> the LogRecord as a ScopeLogs.log_records element (tag and length included)."},
    {"calls_of", (PyCFunction)(void (*)(void))calls_of, METH_FASTCALL,
     "calls_of(rows, derived, principals, times, derive, principals_of, parse_time) -> [Call, ...]\n"
     "exporter.decode.scan.calls_of's loop."},
    {"add_calls", (PyCFunction)(void (*)(void))add_calls, METH_FASTCALL,
     "add_calls(calls, start, slots, slot, table, errors, batch, newest, principals, prune, max_principals,\n"
     "lag_counts, buckets, now, by_arn, kept_flags) -> (kept, stop)\n"
     "exporter.sinks.metrics.Aggregate.add_calls's loop, up to the first call it leaves to Python."},
    {"encode_calls", (PyCFunction)(void (*)(void))encode_calls, METH_FASTCALL,
     "encode_calls(calls, raws, kept, start, kinds, principals, batch_attrs, observed_ns, room_records,\n"
     "room_bytes, batch_records, batch_bytes, open_records, open_bytes, source_ip, user_agent, access_key_id,\n"
     "params, hasher, decode) -> ([(chunk, records), ...], stop, nbytes, open_records, open_bytes)\n"
     "LogSink.emit_calls's loop, up to the first call it leaves to Python."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_native", "The exporter's hot loops in C (see _native.c).", -1,
                                    METHODS};

PyMODINIT_FUNC PyInit__native(void) {
    const uint16_t one = 1;
    if (*(const unsigned char *)&one != 1) {
        PyErr_SetString(PyExc_ImportError, "_native: big-endian hosts use the Python encoder");
        return NULL;
    }
    init_stop();
    Names *tables[] = {&N_ARN, &N_ISSUER, &N_PARAMS, &N_RESOURCE, &N_IDENT, &N_TOP, &N_DOC};
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        if (names_init(tables[i])) {
            PyErr_SetString(PyExc_ImportError, "_native: two key names share a slot");
            return NULL;
        }
    }
    return PyModule_Create(&MODULE);
}
