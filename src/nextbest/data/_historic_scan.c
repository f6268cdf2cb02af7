/*
 * The fast path of the shop feed's historic message: one pass over the raw bytes.
 *
 *     HistoricScanner(flag_names).scan(raw) -> (uuid, flags, known, repeats, unknown) | None
 *
 * raw is {"uuid": <int>, "products": {"<name>": <value>, ...}} with any other top-level keys.
 *   uuid     the integer in [0, 2^63 - 1]
 *   flags    bytes, one per flag name in order: 0, 1, or 255 when the message does not name the flag
 *   known    how many distinct flag names the message names
 *   repeats  None when no flag name is repeated; otherwise bytes, one per flag: 0 not repeated, 1 repeated with
 *            the same value, 2 repeated with conflicting values
 *   unknown  None, or the list of product keys that are not flag names (in message order, repeats included)
 * A repeated flag is 1 when any of its records says 1 (the documented rule of nextbest.data.feed).
 *
 * The scanner only accepts what it can decide exactly, and returns None for everything else: any byte outside
 * printable ASCII plus JSON white space, a backslash, a nested array or object as a value, a uuid that is not a
 * plain non-negative integer in range, a flag value other than the integers 0 and 1, a repeated top-level key, a
 * missing uuid or products, anything that is not valid JSON. Python then decodes the message with the reference
 * path (msgspec validation and the same rule written in Python), which also words the rejection reason.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MISSING 255

typedef struct {
    PyObject_HEAD
    Py_ssize_t n;          /* number of flags */
    Py_ssize_t mask;       /* table size - 1 (table size is a power of two >= 4 n) */
    int32_t *table;        /* slot -> flag index, or -1 */
    char *names;           /* the names, concatenated */
    Py_ssize_t *offsets;   /* n + 1 offsets into names */
} Scanner;

static uint32_t fnv1a(const unsigned char *s, Py_ssize_t len) {
    uint32_t h = 2166136261u;
    for (Py_ssize_t i = 0; i < len; i++) {
        h ^= s[i];
        h *= 16777619u;
    }
    return h;
}

static Py_ssize_t lookup(const Scanner *self, const unsigned char *key, Py_ssize_t len) {
    Py_ssize_t slot = (Py_ssize_t)(fnv1a(key, len) & (uint32_t)self->mask);
    for (;;) {
        int32_t index = self->table[slot];
        if (index < 0)
            return -1;
        Py_ssize_t start = self->offsets[index], stop = self->offsets[index + 1];
        if (stop - start == len && memcmp(self->names + start, key, (size_t)len) == 0)
            return index;
        slot = (slot + 1) & self->mask;
    }
}

static void Scanner_dealloc(Scanner *self) {
    PyMem_Free(self->table);
    PyMem_Free(self->names);
    PyMem_Free(self->offsets);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int name_is_plain(const char *s, Py_ssize_t len) {
    if (len == 0)
        return 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
            return 0;
    }
    return 1;
}

static int Scanner_init(Scanner *self, PyObject *args, PyObject *kwds) {
    static char *keywords[] = {"flag_names", NULL};
    PyObject *names_arg;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O", keywords, &names_arg))
        return -1;
    PyObject *names = PySequence_Fast(names_arg, "flag_names must be a sequence of str");
    if (names == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(names);
    if (n < 1 || n > INT32_MAX / 8) {
        Py_DECREF(names);
        PyErr_SetString(PyExc_ValueError, "flag_names must hold between 1 and 2^28 names");
        return -1;
    }
    Py_ssize_t size = 4;
    while (size < 4 * n)
        size <<= 1;
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PySequence_Fast_GET_ITEM(names, i);
        Py_ssize_t len;
        const char *text = PyUnicode_Check(name) ? PyUnicode_AsUTF8AndSize(name, &len) : NULL;
        if (text == NULL || !name_is_plain(text, len)) {
            Py_DECREF(names);
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "flag name %zd is not plain printable ASCII text", i);
            return -1;
        }
        total += len;
    }
    PyMem_Free(self->table);
    PyMem_Free(self->names);
    PyMem_Free(self->offsets);
    self->table = PyMem_Malloc((size_t)size * sizeof(int32_t));
    self->names = PyMem_Malloc((size_t)total + 1);
    self->offsets = PyMem_Malloc((size_t)(n + 1) * sizeof(Py_ssize_t));
    if (self->table == NULL || self->names == NULL || self->offsets == NULL) {
        Py_DECREF(names);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t s = 0; s < size; s++)
        self->table[s] = -1;
    self->n = n;
    self->mask = size - 1;
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t len;
        const char *text = PyUnicode_AsUTF8AndSize(PySequence_Fast_GET_ITEM(names, i), &len);
        self->offsets[i] = at;
        memcpy(self->names + at, text, (size_t)len);
        if (lookup(self, (const unsigned char *)text, len) >= 0) {
            Py_DECREF(names);
            PyErr_Format(PyExc_ValueError, "flag name %zd is repeated", i);
            return -1;
        }
        self->offsets[i + 1] = at + len;
        Py_ssize_t slot = (Py_ssize_t)(fnv1a((const unsigned char *)text, len) & (uint32_t)self->mask);
        while (self->table[slot] >= 0)
            slot = (slot + 1) & self->mask;
        self->table[slot] = (int32_t)i;
        at += len;
    }
    Py_DECREF(names);
    return 0;
}

/* ------------------------------------------------------------------------------------------- the grammar */

typedef struct {
    const unsigned char *p, *end;
} Cursor;

static void skip_ws(Cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int is_digit(unsigned char ch) { return ch >= '0' && ch <= '9'; }

/* A plain string at c->p (opening quote): sets [*start, *len) to its content. 0 when not plain. */
static int plain_string(Cursor *c, const unsigned char **start, Py_ssize_t *len) {
    if (c->p >= c->end || *c->p != '"')
        return 0;
    const unsigned char *s = ++c->p;
    while (c->p < c->end && *c->p != '"') {
        unsigned char ch = *c->p;
        if (ch < 0x20 || ch >= 0x7f || ch == '\\')
            return 0;
        c->p++;
    }
    if (c->p >= c->end)
        return 0;
    *start = s;
    *len = c->p - s;
    c->p++;
    return 1;
}

/* A JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? ; sets its extent. 0 when malformed. */
static int number(Cursor *c, const unsigned char **start, Py_ssize_t *len) {
    const unsigned char *s = c->p;
    if (c->p < c->end && *c->p == '-')
        c->p++;
    if (c->p >= c->end || !is_digit(*c->p))
        return 0;
    if (*c->p == '0')
        c->p++;
    else
        while (c->p < c->end && is_digit(*c->p))
            c->p++;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (c->p >= c->end || !is_digit(*c->p))
            return 0;
        while (c->p < c->end && is_digit(*c->p))
            c->p++;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (c->p >= c->end || !is_digit(*c->p))
            return 0;
        while (c->p < c->end && is_digit(*c->p))
            c->p++;
    }
    *start = s;
    *len = c->p - s;
    return 1;
}

static int literal(Cursor *c, const char *word) {
    size_t len = strlen(word);
    if ((size_t)(c->end - c->p) < len || memcmp(c->p, word, len) != 0)
        return 0;
    c->p += len;
    return 1;
}

/* A scalar value whose content is not needed (a string, number or literal). 0 when not one. */
static int skip_scalar(Cursor *c) {
    const unsigned char *start;
    Py_ssize_t len;
    if (c->p >= c->end)
        return 0;
    switch (*c->p) {
    case '"':
        return plain_string(c, &start, &len);
    case 't':
        return literal(c, "true");
    case 'f':
        return literal(c, "false");
    case 'n':
        return literal(c, "null");
    default:
        return number(c, &start, &len);
    }
}

/* A member's key and the ':' after it (white space skipped up to the value). 0 when not there. */
static int member_key(Cursor *c, const unsigned char **key, Py_ssize_t *len) {
    if (!plain_string(c, key, len))
        return 0;
    skip_ws(c);
    if (c->p >= c->end || *c->p != ':')
        return 0;
    c->p++;
    skip_ws(c);
    return 1;
}

/* After a value: ',' (1, more members follow), '}' (2, the object ends) or anything else (0). */
static int member_end(Cursor *c) {
    skip_ws(c);
    if (c->p >= c->end)
        return 0;
    if (*c->p == ',') {
        c->p++;
        skip_ws(c);
        return 1;
    }
    if (*c->p == '}') {
        c->p++;
        return 2;
    }
    return 0;
}

typedef struct {
    unsigned char *flags, *repeats;
    Py_ssize_t known;
    PyObject *unknown; /* list or NULL */
    int failed;        /* a Python error is set */
} Products;

static int add_unknown(Products *out, const unsigned char *key, Py_ssize_t len) {
    if (out->unknown == NULL && (out->unknown = PyList_New(0)) == NULL)
        return 0;
    PyObject *name = PyUnicode_DecodeASCII((const char *)key, len, NULL);
    if (name == NULL)
        return 0;
    int status = PyList_Append(out->unknown, name);
    Py_DECREF(name);
    return status == 0;
}

/* The products object at c->p. 1 when scanned, 0 when outside the fast grammar (or out->failed on an error). */
static int scan_products(const Scanner *self, Cursor *c, Products *out) {
    if (c->p >= c->end || *c->p != '{')
        return 0;
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return 1;
    }
    for (;;) {
        const unsigned char *key, *value;
        Py_ssize_t key_len, value_len;
        if (!member_key(c, &key, &key_len))
            return 0;
        Py_ssize_t index = lookup(self, key, key_len);
        if (index >= 0) {
            if (!number(c, &value, &value_len) || value_len != 1 || (*value != '0' && *value != '1'))
                return 0;
            unsigned char bit = (unsigned char)(*value - '0');
            unsigned char *flag = out->flags + index;
            if (*flag == MISSING) {
                *flag = bit;
                out->known++;
            } else {
                out->repeats[index] = (*flag != bit || out->repeats[index] == 2) ? 2 : 1;
                *flag |= bit;
            }
        } else {
            if (!skip_scalar(c))
                return 0;
            if (!add_unknown(out, key, key_len)) {
                out->failed = 1;
                return 0;
            }
        }
        int next = member_end(c);
        if (next == 0)
            return 0;
        if (next == 2)
            return 1;
    }
}

/* A uuid token: digits only, no leading zero, at most 2^63 - 1. */
static int parse_uuid(Cursor *c, long long *uuid) {
    const unsigned char *s;
    Py_ssize_t len;
    if (!number(c, &s, &len) || len > 19 || (len > 1 && *s == '0'))
        return 0;
    unsigned long long value = 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return 0;
        value = value * 10 + (unsigned long long)(s[i] - '0');
    }
    if (value > (unsigned long long)INT64_MAX)
        return 0;
    *uuid = (long long)value;
    return 1;
}

static int scan_message(const Scanner *self, Cursor *c, long long *uuid, Products *out) {
    int has_uuid = 0, has_products = 0;
    skip_ws(c);
    if (c->p >= c->end || *c->p != '{')
        return 0;
    c->p++;
    skip_ws(c);
    for (;;) {
        const unsigned char *key;
        Py_ssize_t len;
        if (!member_key(c, &key, &len))
            return 0;
        if (len == 4 && memcmp(key, "uuid", 4) == 0) {
            if (has_uuid++ || !parse_uuid(c, uuid))
                return 0;
        } else if (len == 8 && memcmp(key, "products", 8) == 0) {
            if (has_products++ || !scan_products(self, c, out))
                return 0;
        } else if (!skip_scalar(c)) {
            return 0;
        }
        int next = member_end(c);
        if (next == 0)
            return 0;
        if (next == 2)
            break;
    }
    skip_ws(c);
    return c->p == c->end && has_uuid && has_products;
}

static PyObject *Scanner_scan(Scanner *self, PyObject *arg) {
    Py_buffer view;
    if (self->table == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "HistoricScanner was not initialized");
        return NULL;
    }
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *flags = PyBytes_FromStringAndSize(NULL, self->n);
    PyObject *repeats = PyBytes_FromStringAndSize(NULL, self->n);
    if (flags == NULL || repeats == NULL) {
        PyBuffer_Release(&view);
        Py_XDECREF(flags);
        Py_XDECREF(repeats);
        return NULL;
    }
    Products out = {(unsigned char *)PyBytes_AS_STRING(flags), (unsigned char *)PyBytes_AS_STRING(repeats), 0,
                    NULL, 0};
    memset(out.flags, MISSING, (size_t)self->n);
    memset(out.repeats, 0, (size_t)self->n);
    Cursor cursor = {(const unsigned char *)view.buf, (const unsigned char *)view.buf + view.len};
    long long uuid = -1;
    int ok = scan_message(self, &cursor, &uuid, &out);
    PyBuffer_Release(&view);
    if (!ok) {
        Py_DECREF(flags);
        Py_DECREF(repeats);
        Py_XDECREF(out.unknown);
        if (out.failed)
            return NULL;
        Py_RETURN_NONE;
    }
    int repeated = memchr(out.repeats, 1, (size_t)self->n) != NULL || memchr(out.repeats, 2, (size_t)self->n) != NULL;
    if (!repeated) {
        Py_DECREF(repeats);
        repeats = Py_NewRef(Py_None);
    }
    PyObject *unknown = out.unknown != NULL ? out.unknown : Py_NewRef(Py_None);
    return Py_BuildValue("(LNnNN)", uuid, flags, out.known, repeats, unknown);
}

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)Scanner_scan, METH_O,
     "scan(raw) -> (uuid, flags, known, repeats, unknown) or None when the message needs the reference path."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "nextbest.data._historic_scan.HistoricScanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "HistoricScanner(flag_names): the fast path of the historic message (see the module source).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_methods = Scanner_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_historic_scan",
    .m_doc = "The compiled fast path of nextbest.data.feed.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__historic_scan(void) {
    if (PyType_Ready(&ScannerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "HistoricScanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
