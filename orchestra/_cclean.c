/* orchestra._cclean: ansi.strip() in C, the same text out for every text in; and transcript.json_string.
 *
 * ansi.py cleans terminal output in five passes, each a str.replace, a regular expression or a
 * bytes.translate, in this order:
 *
 *   1. the erase-line-cursor-up pairs of a TUI's redraw out (ansi._ERASE_UP, as str.replace)
 *   2. escape sequences out (ansi._ESCAPES), but a CSI cursor move (final byte C or G)
 *   3. then, where an ESC is left: a plain cursor move becomes a space (ansi._CURSOR_GAP)
 *   4. then, where an ESC is still left: the other moves go (ansi._MOVES)
 *   5. control characters (ansi._controls): a lone CR or a backspace becomes a line feed, a CR before a
 *      line feed goes, as do the others but tab and line feed
 *
 * Here a text whose every ESC begins a sequence that passes 2 to 4 take whole (nearly every text) is
 * cleaned in one pass, pass_all; any other is cleaned pass by pass, as ansi.py does. Either way the result
 * is ansi.py's for any text, odd escapes and all (tests/test_cclean.py compares the two on random text).
 * The string's own characters are read (1, 2 or 4 bytes each), never converted. The module is optional:
 * where pip cannot build it (no C compiler), ansi.py's Python does the work.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define ESC 0x1b
#define MAX_STRING 4096 /* ansi.MAX_STRING */

#if defined(__GNUC__) || defined(__clang__)
#define INLINE static inline __attribute__((always_inline))
#else
#define INLINE static inline
#endif

/* A character of a string of `kind`; with kind a constant, the compiler keeps one branch. */
#define AT(kind, data, i)                                                                                          \
    ((kind) == PyUnicode_1BYTE_KIND   ? (Py_UCS4)((const Py_UCS1 *)(data))[i]                                      \
     : (kind) == PyUnicode_2BYTE_KIND ? (Py_UCS4)((const Py_UCS2 *)(data))[i]                                      \
                                      : ((const Py_UCS4 *)(data))[i])
#define PUT(kind, data, i, c)                                                                                      \
    do {                                                                                                           \
        if ((kind) == PyUnicode_1BYTE_KIND)                                                                        \
            ((Py_UCS1 *)(data))[i] = (Py_UCS1)(c);                                                                 \
        else if ((kind) == PyUnicode_2BYTE_KIND)                                                                   \
            ((Py_UCS2 *)(data))[i] = (Py_UCS2)(c);                                                                 \
        else                                                                                                       \
            ((Py_UCS4 *)(data))[i] = (c);                                                                          \
    } while (0)

#define IN(c, lo, hi) ((c) >= (lo) && (c) <= (hi))
#define PARAM(c) IN(c, 0x30, 0x3f)        /* [0-?] */
#define INTERMEDIATE(c) IN(c, 0x20, 0x2f) /* [ -/] */

static const Py_UCS4 ERASE_UP[8] = {ESC, '[', '2', 'K', ESC, '[', '1', 'A'};

INLINE int erase_up_at(int kind, const void *s, Py_ssize_t n, Py_ssize_t i)
{
    if (n - i < 8)
        return 0;
    for (int k = 0; k < 8; k++)
        if (AT(kind, s, i + k) != ERASE_UP[k])
            return 0;
    return 1;
}

/* 1: the text without its erase-up pairs; returns the new length. */
INLINE Py_ssize_t pass_erase_up(int kind, const void *s, Py_ssize_t n, void *out, Py_ssize_t from)
{
    Py_ssize_t i, o;
    if (kind == PyUnicode_1BYTE_KIND) {
        memcpy(out, s, from);
    } else {
        for (i = 0; i < from; i++)
            PUT(kind, out, i, AT(kind, s, i));
    }
    o = from;
    for (i = from; i < n;) {
        Py_UCS4 c = AT(kind, s, i);
        if (c == ESC && erase_up_at(kind, s, n, i)) {
            i += 8;
            continue;
        }
        PUT(kind, out, o, c);
        o++;
        i++;
    }
    return o;
}

/* The end of the CSI sequence at i (s[i] is ESC, s[i+1] is '['): after its parameter and intermediate
 * bytes; *final is the character there (0 at the text's end). */
INLINE Py_ssize_t csi_body(int kind, const void *s, Py_ssize_t n, Py_ssize_t i, int digits_only, Py_UCS4 *final)
{
    Py_ssize_t j = i + 2;
    if (digits_only) { /* [0-9;?]* */
        while (j < n) {
            Py_UCS4 c = AT(kind, s, j);
            if (!(IN(c, '0', '9') || c == ';' || c == '?'))
                break;
            j++;
        }
    } else { /* [0-?]*[ -/]* */
        while (j < n && PARAM(AT(kind, s, j)))
            j++;
        while (j < n && INTERMEDIATE(AT(kind, s, j)))
            j++;
    }
    *final = j < n ? AT(kind, s, j) : 0;
    return j;
}

/* 2: escape sequences out, as ansi._ESCAPES.sub("", s); *left is set when an ESC stays in the text. */
INLINE Py_ssize_t pass_escapes(int kind, const void *s, Py_ssize_t n, void *out, int *left)
{
    Py_ssize_t i = 0, o = 0;
    *left = 0;
    while (i < n) {
        Py_UCS4 c = AT(kind, s, i);
        if (c != ESC || i + 1 >= n) {
            if (c == ESC)
                *left = 1;
            PUT(kind, out, o, c);
            o++;
            i++;
            continue;
        }
        Py_UCS4 d = AT(kind, s, i + 1);
        if (d == '[') { /* CSI, but a cursor move */
            Py_UCS4 f;
            Py_ssize_t j = csi_body(kind, s, n, i, 0, &f);
            if (j < n && (IN(f, 0x40, 0x42) || IN(f, 0x44, 0x46) || IN(f, 0x48, 0x7e))) {
                i = j + 1;
                continue;
            }
            /* no other alternative starts with '[' */
        } else if (d == ']' || d == 'P' || d == '^' || d == '_') { /* OSC, DCS, PM, APC */
            Py_ssize_t j = i + 2, end = i + 2 + MAX_STRING;
            while (j < n && j < end) {
                Py_UCS4 e = AT(kind, s, j);
                if (e == 0x07 || e == ESC || e == '\n')
                    break;
                j++;
            }
            if (j < n && AT(kind, s, j) == 0x07)
                j++;
            else if (j + 1 < n && AT(kind, s, j) == ESC && AT(kind, s, j + 1) == '\\')
                j += 2;
            i = j;
            continue;
        } else if (d == '(' || d == ')' || d == '*' || d == '+') { /* charset selection */
            if (i + 2 < n) {
                Py_UCS4 e = AT(kind, s, i + 2);
                if (IN(e, '0', '9') || IN(e, 'A', 'Z') || IN(e, 'a', 'z')) {
                    i += 3;
                    continue;
                }
            }
        } else if (IN(d, 0x40, 0x5a) || IN(d, 0x5c, 0x5f) || d == '=' || d == '>' || d == '7' || d == '8') {
            i += 2; /* a two-byte escape */
            continue;
        }
        *left = 1;
        PUT(kind, out, o, c);
        o++;
        i++;
    }
    return o;
}

/* 3 (gap) and 4 (not): CSI cursor moves out, each a space where gap is set; *left as in pass_escapes. */
INLINE Py_ssize_t pass_moves(int kind, const void *s, Py_ssize_t n, void *out, int gap, int *left)
{
    Py_ssize_t i = 0, o = 0;
    *left = 0;
    while (i < n) {
        Py_UCS4 c = AT(kind, s, i);
        if (c == ESC && i + 1 < n && AT(kind, s, i + 1) == '[') {
            Py_UCS4 f;
            Py_ssize_t j = csi_body(kind, s, n, i, gap, &f);
            if (j < n && (f == 'C' || f == 'G')) {
                if (gap) {
                    PUT(kind, out, o, ' ');
                    o++;
                }
                i = j + 1;
                continue;
            }
        }
        if (c == ESC)
            *left = 1;
        PUT(kind, out, o, c);
        o++;
        i++;
    }
    return o;
}

/* 5: control characters; returns the new length, -1 when the text has none (it is its own result). */
INLINE Py_ssize_t pass_controls(int kind, const void *s, Py_ssize_t n, void *out)
{
    Py_ssize_t i = 0, o;
    for (; i < n; i++) {
        Py_UCS4 c = AT(kind, s, i);
        if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
            break;
    }
    if (i == n)
        return -1;
    if (s != out) {
        Py_ssize_t k;
        if (kind == PyUnicode_1BYTE_KIND)
            memcpy(out, s, i);
        else
            for (k = 0; k < i; k++)
                PUT(kind, out, k, AT(kind, s, k));
    }
    for (o = i; i < n; i++) {
        Py_UCS4 c = AT(kind, s, i);
        if (c >= 0x20 && c != 0x7f) {
            PUT(kind, out, o, c);
            o++;
        } else if (c == '\t' || c == '\n' || c == '\b') {
            PUT(kind, out, o, c == '\b' ? '\n' : c);
            o++;
        } else if (c == '\r') {
            if (i + 1 < n && AT(kind, s, i + 1) == '\n')
                continue; /* the first half of CR LF */
            PUT(kind, out, o, '\n');
            o++;
        }
        /* any other control character goes */
    }
    return o;
}

/* j, or past the erase-up pairs at j: where the next character is in the text that pass 1 gives. */
INLINE Py_ssize_t skip_erase_up(int kind, const void *s, Py_ssize_t n, Py_ssize_t j)
{
    while (j < n && AT(kind, s, j) == ESC && erase_up_at(kind, s, n, j))
        j += 8;
    return j;
}

/* Past the characters of a class from j (PARAM or INTERMEDIATE), in the text that pass 1 gives. */
#define SCAN(CLASS)                                                                                                \
    for (;;) {                                                                                                     \
        if (j >= n)                                                                                                \
            break;                                                                                                 \
        Py_UCS4 e_ = AT(kind, s, j);                                                                               \
        if (CLASS(e_))                                                                                             \
            j++;                                                                                                   \
        else if (e_ == ESC && erase_up_at(kind, s, n, j))                                                          \
            j += 8;                                                                                                \
        else                                                                                                       \
            break;                                                                                                 \
    }

#define EMIT(c)                                                                                                    \
    do {                                                                                                           \
        if (cr) {                                                                                                  \
            PUT(kind, out, o, '\n');                                                                               \
            o++;                                                                                                   \
            cr = 0;                                                                                                \
        }                                                                                                          \
        PUT(kind, out, o, c);                                                                                      \
        o++;                                                                                                       \
    } while (0)

/* All five passes at once, for a text whose every ESC starts a sequence that pass 2 takes out or a whole
 * cursor move (which passes 3 and 4 then take): returns the length written to out, or -1 at an ESC that
 * would stay (an unfinished or unknown sequence: the passes are then made one by one). An erase-up pair is
 * stepped over wherever it is, inside a sequence too, as pass 1 would have taken it out first; a CR is
 * written once the next character tells a lone one from half of a CR LF. */
INLINE Py_ssize_t pass_all(int kind, const void *s, Py_ssize_t n, void *out)
{
    Py_ssize_t i = 0, o = 0, j;
    int cr = 0; /* a CR waits for the next character */
    while (i < n) {
        Py_ssize_t run = i;
        Py_UCS4 c = 0;
        while (run < n) { /* printable characters, as they are */
            c = AT(kind, s, run);
            if (c < 0x20 || c == 0x7f)
                break;
            run++;
        }
        if (run > i) {
            if (cr) {
                PUT(kind, out, o, '\n');
                o++;
                cr = 0;
            }
            memcpy((char *)out + o * kind, (const char *)s + i * kind, (run - i) * kind);
            o += run - i;
            i = run;
            if (i >= n)
                break;
        }
        if (c == ESC) {
            if (erase_up_at(kind, s, n, i)) {
                i += 8;
                continue;
            }
            j = skip_erase_up(kind, s, n, i + 1);
            if (j >= n)
                return -1;
            Py_UCS4 d = AT(kind, s, j);
            if (d == '[') {
                Py_ssize_t body = j = skip_erase_up(kind, s, n, j + 1);
                SCAN(PARAM)
                Py_ssize_t params = j;
                SCAN(INTERMEDIATE)
                if (j >= n)
                    return -1;
                Py_UCS4 f = AT(kind, s, j);
                i = j + 1;
                if (f == 'C' || f == 'G') {
                    /* pass 2 leaves it, whole: pass 3 makes a gap of a move of digits, ';' and '?' only (no
                     * intermediate byte), pass 4 takes out the others */
                    int gap = params == j;
                    for (j = body; gap && j < params; j++) {
                        Py_UCS4 e = AT(kind, s, j);
                        if (e == ESC)
                            j += 7; /* an erase-up pair */
                        else if (e == ':' || IN(e, '<', '>'))
                            gap = 0;
                    }
                    if (gap)
                        EMIT(' ');
                    continue;
                }
                if (!(IN(f, 0x40, 0x42) || IN(f, 0x44, 0x46) || IN(f, 0x48, 0x7e)))
                    return -1;
            } else if (d == ']' || d == 'P' || d == '^' || d == '_') {
                int count = 0;
                j = skip_erase_up(kind, s, n, j + 1);
                while (j < n && count < MAX_STRING) {
                    Py_UCS4 e = AT(kind, s, j);
                    if (e == 0x07 || e == '\n')
                        break;
                    if (e == ESC) {
                        if (!erase_up_at(kind, s, n, j))
                            break;
                        j += 8;
                        continue;
                    }
                    j++;
                    count++;
                }
                if (j < n && AT(kind, s, j) == 0x07) {
                    j++;
                } else if (j < n && AT(kind, s, j) == ESC) {
                    Py_ssize_t k = skip_erase_up(kind, s, n, j + 1);
                    if (k < n && AT(kind, s, k) == '\\')
                        j = k + 1;
                }
                i = j;
            } else if (d == '(' || d == ')' || d == '*' || d == '+') {
                j = skip_erase_up(kind, s, n, j + 1);
                if (j >= n)
                    return -1;
                Py_UCS4 e = AT(kind, s, j);
                if (!(IN(e, '0', '9') || IN(e, 'A', 'Z') || IN(e, 'a', 'z')))
                    return -1;
                i = j + 1;
            } else if (IN(d, 0x40, 0x5a) || IN(d, 0x5c, 0x5f) || d == '=' || d == '>' || d == '7' || d == '8') {
                i = j + 1;
            } else {
                return -1;
            }
            continue;
        }
        /* a control character, as pass_controls */
        i++;
        if (c == '\r') {
            if (cr) {
                PUT(kind, out, o, '\n');
                o++;
            }
            cr = 1;
        } else if (c == '\n') {
            cr = 0; /* (a CR before it was half of a CR LF) */
            PUT(kind, out, o, '\n');
            o++;
        } else if (c == '\t' || c == '\b') {
            EMIT(c == '\b' ? '\n' : '\t');
        } else if (cr) { /* any other goes, after the CR it tells is a lone one */
            PUT(kind, out, o, '\n');
            o++;
            cr = 0;
        }
    }
    if (cr) {
        PUT(kind, out, o, '\n');
        o++;
    }
    return o;
}

/* The passes one after another: for a text where an ESC stays after pass 2 (rare: a cursor move, an
 * unfinished or unknown sequence). */
INLINE Py_ssize_t passes(int kind, const void *s, Py_ssize_t n, void *a, void *b)
{
    Py_ssize_t i;
    const void *cur = s;
    int left;
    for (i = 0; i < n; i++) /* any erase-up pair? */
        if (AT(kind, s, i) == ESC && erase_up_at(kind, s, n, i))
            break;
    if (i < n) {
        n = pass_erase_up(kind, s, n, b, i);
        cur = b;
    }
    n = pass_escapes(kind, cur, n, a, &left);
    cur = a;
    if (left) {
        n = pass_moves(kind, a, n, b, 1, &left);
        cur = b;
        if (left) {
            n = pass_moves(kind, b, n, a, 0, &left);
            cur = a;
        }
    }
    Py_ssize_t m = pass_controls(kind, cur, n, a);
    if (m >= 0)
        return m;
    if (cur != a) /* (nothing to change) */
        memcpy(a, cur, n * kind);
    return n;
}

INLINE PyObject *clean_kind(PyObject *text, int kind)
{
    const void *s = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), m;
    void *a = PyMem_Malloc(n ? n * kind : 1), *b = NULL;
    PyObject *result;
    if (a == NULL)
        return PyErr_NoMemory();
    m = pass_all(kind, s, n, a);
    if (m < 0) {
        b = PyMem_Malloc(n * kind);
        if (b == NULL) {
            PyMem_Free(a);
            return PyErr_NoMemory();
        }
        m = passes(kind, s, n, a, b);
    }
    if (m == n && memcmp(a, s, n * kind) == 0) {
        Py_INCREF(text);
        result = text;
    } else {
        result = PyUnicode_FromKindAndData(kind, a, m);
    }
    PyMem_Free(a);
    PyMem_Free(b);
    return result;
}

/* Whether text is a str whose characters can be read; else an exception is set. */
static int is_text(PyObject *text, const char *function)
{
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "%s() takes a str, not %.100s", function, Py_TYPE(text)->tp_name);
        return 0;
    }
#if PY_VERSION_HEX < 0x030c0000
    if (PyUnicode_READY(text) < 0)
        return 0;
#endif
    return 1;
}

static PyObject *clean(PyObject *module, PyObject *text)
{
    if (!is_text(text, "clean"))
        return NULL;
    switch (PyUnicode_KIND(text)) {
    case PyUnicode_1BYTE_KIND:
        return clean_kind(text, PyUnicode_1BYTE_KIND);
    case PyUnicode_2BYTE_KIND:
        return clean_kind(text, PyUnicode_2BYTE_KIND);
    default:
        return clean_kind(text, PyUnicode_4BYTE_KIND);
    }
}

/* A transcript event's text as a JSON string literal in UTF-8 (transcript.json_string): what json.dumps(text,
 * ensure_ascii=False) writes, encoded, but a lone surrogate (which UTF-8 cannot hold) escaped as json.dumps
 * escapes it. Non-ASCII characters stay as they are: a TUI's box drawing, braille spinner and dots take 2 or 3
 * bytes each instead of 6 (asciinema writes its recordings so, and every JSON reader reads them). */
static const char HEX[] = "0123456789abcdef";
/* what an ASCII character adds to the JSON's length: 0 as it is, 1 for \" \\ \n \r \t \b \f, 5 for \u00XX */
static unsigned char JSON_EXTRA[128];

static void json_init(void)
{
    for (int c = 0; c < 128; c++)
        JSON_EXTRA[c] = c < 0x20 ? 5 : (c == '"' || c == '\\') ? 1 : 0;
    JSON_EXTRA['\n'] = JSON_EXTRA['\r'] = JSON_EXTRA['\t'] = JSON_EXTRA['\b'] = JSON_EXTRA['\f'] = 1;
}

INLINE char *json_kind(int kind, const void *s, Py_ssize_t n, char *p)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = AT(kind, s, i);
        if (c < 0x80) {
            if (!JSON_EXTRA[c]) {
                *p++ = (char)c;
                continue;
            }
            *p++ = '\\';
            switch (c) {
            case '"': *p++ = '"'; break;
            case '\\': *p++ = '\\'; break;
            case '\n': *p++ = 'n'; break;
            case '\r': *p++ = 'r'; break;
            case '\t': *p++ = 't'; break;
            case '\b': *p++ = 'b'; break;
            case '\f': *p++ = 'f'; break;
            default:
                *p++ = 'u';
                *p++ = '0';
                *p++ = '0';
                *p++ = HEX[c >> 4];
                *p++ = HEX[c & 15];
            }
        } else if (c < 0x800) {
            *p++ = (char)(0xc0 | (c >> 6));
            *p++ = (char)(0x80 | (c & 0x3f));
        } else if (c >= 0xd800 && c <= 0xdfff) {
            *p++ = '\\';
            *p++ = 'u';
            *p++ = HEX[c >> 12];
            *p++ = HEX[(c >> 8) & 15];
            *p++ = HEX[(c >> 4) & 15];
            *p++ = HEX[c & 15];
        } else if (c < 0x10000) {
            *p++ = (char)(0xe0 | (c >> 12));
            *p++ = (char)(0x80 | ((c >> 6) & 0x3f));
            *p++ = (char)(0x80 | (c & 0x3f));
        } else {
            *p++ = (char)(0xf0 | (c >> 18));
            *p++ = (char)(0x80 | ((c >> 12) & 0x3f));
            *p++ = (char)(0x80 | ((c >> 6) & 0x3f));
            *p++ = (char)(0x80 | (c & 0x3f));
        }
    }
    return p;
}

/* The length of json_kind's output for the text. */
INLINE Py_ssize_t json_size(int kind, const void *s, Py_ssize_t n)
{
    Py_ssize_t size = n;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = AT(kind, s, i);
        if (c < 0x80)
            size += JSON_EXTRA[c];
        else if (c < 0x800)
            size += 1;
        else if (c >= 0xd800 && c <= 0xdfff)
            size += 5;
        else
            size += c < 0x10000 ? 2 : 3;
    }
    return size;
}

static PyObject *json_string(PyObject *module, PyObject *text)
{
    if (!is_text(text, "json_string"))
        return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), size;
    const void *s = PyUnicode_DATA(text);
    int kind = PyUnicode_KIND(text);
    if (n > (PY_SSIZE_T_MAX - 2) / 6)
        return PyErr_NoMemory();
    size = kind == PyUnicode_1BYTE_KIND   ? json_size(PyUnicode_1BYTE_KIND, s, n)
           : kind == PyUnicode_2BYTE_KIND ? json_size(PyUnicode_2BYTE_KIND, s, n)
                                          : json_size(PyUnicode_4BYTE_KIND, s, n);
    PyObject *out = PyBytes_FromStringAndSize(NULL, size + 2);
    if (out == NULL)
        return NULL;
    char *p = PyBytes_AS_STRING(out);
    *p++ = '"';
    p = kind == PyUnicode_1BYTE_KIND   ? json_kind(PyUnicode_1BYTE_KIND, s, n, p)
        : kind == PyUnicode_2BYTE_KIND ? json_kind(PyUnicode_2BYTE_KIND, s, n, p)
                                       : json_kind(PyUnicode_4BYTE_KIND, s, n, p);
    *p = '"';
    return out;
}

static PyMethodDef methods[] = {
    {"clean", clean, METH_O, "ansi.strip(text): escape sequences out, control characters as ansi._controls."},
    {"json_string", json_string, METH_O, "text as a JSON string literal in UTF-8 (lone surrogates escaped)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "orchestra._cclean", NULL, 0, methods};

PyMODINIT_FUNC PyInit__cclean(void)
{
    json_init();
    return PyModule_Create(&module);
}
