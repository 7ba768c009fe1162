/*
 * _quantpipe_kernels: the linear predictors' inner loops, the same bits on every machine, and
 * the reader of plain CSV numbers (quantpipe.plain), float()'s values at C speed.
 *
 * Python calls them through quantpipe.compiled, the one module that imports this one; the
 * arithmetic is documented where they are used: quantpipe.numerics.row_dot (the float and
 * the quantized linear models) and quantpipe.quant.integer (the integer-only model). Every float result here is a fixed sequence of IEEE 754 double
 * operations, each correctly rounded on every CPU, so it does not depend on the machine,
 * the compiler's vector width or the batch a row arrives in, provided the compiler neither
 * reassociates nor fuses a multiply and an add. setup.py builds this file with
 * -ffp-contract=off (GCC's own default fuses on CPUs with FMA, clang's within an
 * expression); -ffast-math would reassociate, and is refused below, as is arithmetic in
 * more precision than double (x87 on 32-bit x86: every result rounded twice).
 * tests/test_numerics.py checks a case that a fused multiply-add would change; setup.py
 * records its flags in the module, and quantpipe.compiled refuses a build without
 * -ffp-contract=off.
 *
 * Arrays arrive through the buffer protocol (no numpy headers at build time): C-contiguous,
 * native byte order, checked here. The loops run without the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <stdint.h>

#ifdef __FAST_MATH__
#error "_quantpipe_kernels needs IEEE arithmetic: build it without -ffast-math"
#endif
/* 2 (x87: double evaluated in long double) and -1 (indeterminate) can change a double's bits;
   0, 1 (float as double) and 16 (_Float16 as itself, with -mavx512fp16) cannot: no float here */
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD == 2 || FLT_EVAL_METHOD < 0
#error "_quantpipe_kernels needs double arithmetic in double precision (SSE2 on x86, not x87)"
#endif
#ifdef __clang__
#pragma clang fp contract(off)
#endif

/* Products of one row held on the stack; longer rows use a heap buffer. */
#define STACK_TERMS 64

/* -- arrays --------------------------------------------------------------------------- */

/* The buffer of obj, C-contiguous and of one element type: 'd' (float64), 'q' (int64) or
 * '?' (bool), with ndim dimensions. Raises ValueError naming the argument otherwise. */
static int get_array(PyObject *obj, Py_buffer *view, char type, int ndim, int writable,
                     const char *name) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) != 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s must be a C-contiguous%s array", name,
                     writable ? ", writable" : "");
        return -1;
    }
    const char *format = view->format ? view->format : "B";
    /* native byte order: '@', '=', or the explicit one that is native here */
    if (format[0] == '@' || format[0] == '=' || format[0] == (PY_LITTLE_ENDIAN ? '<' : '>')) {
        format++;
    }
    char got = format[0];
    if (type == 'q' && got == 'l' && sizeof(long) == 8) {
        got = 'q';
    }
    Py_ssize_t itemsize = type == '?' ? 1 : 8;
    if (got != type || format[1] != '\0' || view->itemsize != itemsize || view->ndim != ndim) {
        PyErr_Format(PyExc_ValueError, "%s must be a %d-D %s array, got format %s with %d-D",
                     name, ndim,
                     type == 'd' ? "float64" : (type == 'q' ? "int64" : "bool"),
                     view->format ? view->format : "B", view->ndim);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static Py_ssize_t dim(const Py_buffer *view, int axis) {
    return view->shape ? view->shape[axis] : view->len / view->itemsize;
}

/* -- the float row dot: quantpipe.numerics.row_dot -------------------------------------- */

/* The sum of p[0..k) in the fixed order of quantpipe.numerics.tree_sum_order: each level
 * adds p[width - half + i] into p[i] for i < half = width / 2. Overwrites p. */
static inline double tree_sum(double *p, Py_ssize_t k) {
    Py_ssize_t width = k;
    while (width > 1) {
        Py_ssize_t half = width / 2, from = width - half;
        for (Py_ssize_t i = 0; i < half; i++) {
            p[i] = p[i] + p[from + i];
        }
        width = from;
    }
    return p[0];
}

/* tree_sum of the 8 products x[j] * w[j], written out: the linear models' 8 features. */
static inline double dot8(const double *x, const double *w) {
    double p0 = x[0] * w[0], p1 = x[1] * w[1], p2 = x[2] * w[2], p3 = x[3] * w[3];
    double p4 = x[4] * w[4], p5 = x[5] * w[5], p6 = x[6] * w[6], p7 = x[7] * w[7];
    double s0 = p0 + p4, s1 = p1 + p5, s2 = p2 + p6, s3 = p3 + p7;
    return (s0 + s2) + (s1 + s3);
}

/* Rows ahead of the one computed whose cache line dot_rows8 asks for: a hint that keeps
 * more of memory's latency in flight than the hardware prefetcher alone (measured on one
 * thread, 5 M rows: 215 M rows/s without, 252 M with; benchmarks/throughput_bench.py). It changes no
 * result. */
#define PREFETCH_ROWS 256
#if defined(__GNUC__)
#define PREFETCH(address) __builtin_prefetch((address), 0, 2)
#else
#define PREFETCH(address) ((void)(address))
#endif

/* Rows [start, stop) into out; returns the sum of every result times 0.0, which is 0.0 when
 * all are finite and NaN otherwise (one add a row, no branch: the check is free at memory
 * speed, where a second pass over out, np.isfinite, cost 12 % of predict's time). */
static inline double dot_span8(const double *X, Py_ssize_t start, Py_ssize_t stop,
                               const double *w, double offset, double *out, int prefetch) {
    double check = 0.0;
    for (Py_ssize_t r = start; r < stop; r++) {
        if (prefetch) {
            PREFETCH(X + 8 * (r + PREFETCH_ROWS));
        }
        double y = dot8(X + 8 * r, w);
        y = offset != 0.0 ? y + offset : y;
        out[r] = y;
        check = check + y * 0.0;
    }
    return check;
}

static double dot_rows8(const double *X, Py_ssize_t n, const double *w, double offset,
                        double *out) {
    Py_ssize_t ahead = n > PREFETCH_ROWS ? n - PREFETCH_ROWS : 0;
    double check = dot_span8(X, 0, ahead, w, offset, out, 1);
    return check + dot_span8(X, ahead, n, w, offset, out, 0);
}

static double dot_rows(const double *X, Py_ssize_t n, Py_ssize_t k, const double *w,
                       double offset, double *out, double *p) {
    double check = 0.0;
    for (Py_ssize_t r = 0; r < n; r++) {
        const double *x = X + k * r;
        for (Py_ssize_t j = 0; j < k; j++) {
            p[j] = x[j] * w[j];
        }
        double y = tree_sum(p, k);
        y = offset != 0.0 ? y + offset : y;
        out[r] = y;
        check = check + y * 0.0;
    }
    return check;
}

/* The first of out[0..n) that is not finite, or -1. */
static Py_ssize_t first_nonfinite(const double *out, Py_ssize_t n) {
    for (Py_ssize_t r = 0; r < n; r++) {
        if (out[r] * 0.0 != 0.0) {
            return r;
        }
    }
    return -1;
}

static PyObject *row_dot(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *X_obj, *w_obj, *out_obj;
    double offset;
    if (!PyArg_ParseTuple(args, "OOOd:row_dot", &X_obj, &w_obj, &out_obj, &offset)) {
        return NULL;
    }
    Py_buffer X, w, out;
    if (get_array(X_obj, &X, 'd', 2, 0, "X") != 0) {
        return NULL;
    }
    if (get_array(w_obj, &w, 'd', 1, 0, "w") != 0) {
        PyBuffer_Release(&X);
        return NULL;
    }
    if (get_array(out_obj, &out, 'd', 1, 1, "out") != 0) {
        PyBuffer_Release(&X);
        PyBuffer_Release(&w);
        return NULL;
    }
    Py_ssize_t n = dim(&X, 0), k = dim(&X, 1);
    PyObject *result = NULL;
    double stack[STACK_TERMS], *p = stack;
    if (dim(&w, 0) != k || dim(&out, 0) != n) {
        PyErr_Format(PyExc_ValueError,
                     "row_dot needs X (n, k), w (k,) and out (n,), got (%zd, %zd), (%zd,) "
                     "and (%zd,)",
                     n, k, dim(&w, 0), dim(&out, 0));
        goto done;
    }
    if (k > STACK_TERMS && (p = PyMem_RawMalloc((size_t)k * sizeof(double))) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t bad = -1;
    Py_BEGIN_ALLOW_THREADS;
    double check = 0.0;
    if (k == 8) {
        check = dot_rows8(X.buf, n, w.buf, offset, out.buf);
    } else if (k == 0) {
        for (Py_ssize_t r = 0; r < n; r++) {
            ((double *)out.buf)[r] = offset;
        }
        check = n ? offset * 0.0 : 0.0;
    } else {
        check = dot_rows(X.buf, n, k, w.buf, offset, out.buf, p);
    }
    if (check != 0.0) {
        bad = first_nonfinite(out.buf, n);
    }
    Py_END_ALLOW_THREADS;
    if (p != stack) {
        PyMem_RawFree(p);
    }
    result = PyLong_FromSsize_t(bad);
done:
    PyBuffer_Release(&X);
    PyBuffer_Release(&w);
    PyBuffer_Release(&out);
    return result;
}

/* -- the integer-only linear model: quantpipe.quant.integer.IntegerLinear --------------- */

/* An input's code is clip(rint(t), 0, levels) with t = (x - lo) / scale, numpy's rint
 * rounding to the nearest integer, ties to even. Computed here as rint(clip(t, 0, levels)),
 * which is the same integer for every t (0 and levels are integers), and rint as
 * (q + ROUNDER) - ROUNDER: for 0 <= q < 2**51 the sum lies in [2**52, 2**53), where the
 * doubles are the integers, and ROUNDER = 1.5 * 2**52 is even, so the sum rounds as rint
 * does. A row saturated when some rint(t) fell outside [0, levels]: rint(t) < 0 exactly
 * when t < -0.5, and, levels = 2**bits - 1 being odd, rint(t) > levels exactly when
 * t >= levels + 0.5 (the tie rounds to the even levels + 1).
 *
 * The accumulation xq @ weight_codes + bias_code is exact in float64: codes are below
 * 2**16, weights at most 2**15 in size, so each product is below 2**31, and the sum of k of
 * them plus a bias in the int32 range is below 2**53 for any k checked here (MAX_FEATURES),
 * whatever the order. So the result is the integer accumulation's, bit for bit, and the
 * row loop can run in vector registers; the int32 range check is made on it. */
static const double ROUNDER = 6755399441055744.0;
#define MAX_CODE_BITS 16
#define MAX_WEIGHT 32768
#define MAX_FEATURES (1 << 20)

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define HAVE_SSE2 1
#endif
/* Keeps the compiler from folding two 16-byte row loads and their unpacking into 8-byte
 * half loads (movlpd/movhpd, some of them straddling cache lines): with it, measured on
 * numpy's 16-byte-aligned arrays, 3x faster. An empty assembly statement: no instruction. */
#if defined(__GNUC__)
#define WHOLE_LOADS(u, v) __asm__("" : "+x"(u), "+x"(v))
#else
#define WHOLE_LOADS(u, v) ((void)0)
#endif

/* The parameters of an IntegerLinear, parsed, with the weight codes as float64. */
typedef struct {
    Py_buffer lo, scale, weights;
    Py_ssize_t k;
    double levels;
    double *w, stack[STACK_TERMS];
} Coding;

static void release_coding(Coding *c) {
    if (c->w != c->stack) {
        PyMem_RawFree(c->w);
    }
    PyBuffer_Release(&c->lo);
    PyBuffer_Release(&c->scale);
    PyBuffer_Release(&c->weights);
}

static int check_coding(Coding *c) {
    c->k = dim(&c->lo, 0);
    if (dim(&c->scale, 0) != c->k || dim(&c->weights, 0) != c->k) {
        PyErr_Format(PyExc_ValueError,
                     "input_lo, input_scale and weight_codes must have one length, got "
                     "%zd, %zd and %zd",
                     c->k, dim(&c->scale, 0), dim(&c->weights, 0));
        return -1;
    }
    if (c->k > MAX_FEATURES) {
        PyErr_Format(PyExc_ValueError, "at most %d features, got %zd", MAX_FEATURES, c->k);
        return -1;
    }
    if (c->k > STACK_TERMS && (c->w = PyMem_RawMalloc((size_t)c->k * sizeof(double))) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    const int64_t *codes = c->weights.buf;
    for (Py_ssize_t j = 0; j < c->k; j++) {
        if (codes[j] > MAX_WEIGHT || codes[j] < -MAX_WEIGHT) {
            PyErr_Format(PyExc_ValueError, "weight code %lld is outside [-%d, %d]",
                         (long long)codes[j], MAX_WEIGHT, MAX_WEIGHT);
            return -1;
        }
        c->w[j] = (double)codes[j];
    }
    return 0;
}

static int get_coding(PyObject *lo, PyObject *scale, PyObject *weights, int bits, Coding *c) {
    if (bits < 1 || bits > MAX_CODE_BITS) {
        PyErr_Format(PyExc_ValueError, "bits must be from 1 to %d, got %d", MAX_CODE_BITS,
                     bits);
        return -1;
    }
    c->levels = (double)((1 << bits) - 1);
    c->w = c->stack;
    if (get_array(lo, &c->lo, 'd', 1, 0, "input_lo") != 0) {
        return -1;
    }
    if (get_array(scale, &c->scale, 'd', 1, 0, "input_scale") != 0) {
        PyBuffer_Release(&c->lo);
        return -1;
    }
    if (get_array(weights, &c->weights, 'q', 1, 0, "weight_codes") != 0) {
        PyBuffer_Release(&c->lo);
        PyBuffer_Release(&c->scale);
        return -1;
    }
    if (check_coding(c) != 0) {
        release_coding(c);
        return -1;
    }
    return 0;
}

static int check_rows(const Py_buffer *X, const Coding *c) {
    if (dim(X, 1) != c->k) {
        PyErr_Format(PyExc_ValueError, "X must have %zd features, got %zd", c->k, dim(X, 1));
        return -1;
    }
    return 0;
}

enum { IN_RANGE = 0, SATURATED = 1, HAS_NAN = 2 };

/* One row: its codes into codes (unless NULL), its exact accumulation without the bias
 * into *acc; returns IN_RANGE, SATURATED or HAS_NAN. */
static inline int code_row(const double *x, const Coding *c, double *codes, double *acc) {
    const double *lo = c->lo.buf, *scale = c->scale.buf;
    int saturated = 0, nan = 0;
    double sum = 0.0;
    for (Py_ssize_t j = 0; j < c->k; j++) {
        double t = (x[j] - lo[j]) / scale[j];
        nan |= t != t;
        saturated |= !(t >= -0.5 && t < c->levels + 0.5);
        double q = t > 0.0 ? t : 0.0;
        q = q < c->levels ? q : c->levels;
        q = (q + ROUNDER) - ROUNDER;
        if (codes) {
            codes[j] = q;
        }
        sum += q * c->w[j];
    }
    *acc = sum;
    return nan ? HAS_NAN : saturated;
}

/* Status of an integer loop: the first row with a NaN or an accumulator outside the int32
 * range, and which. */
typedef struct {
    Py_ssize_t row;
    int nan, overflow;
} Status;

static int record(Status *s, Py_ssize_t row, int nan, double acc) {
    if (!nan && acc <= INT32_MAX && acc >= INT32_MIN) {
        return 0;
    }
    s->row = row;
    s->nan = nan;
    s->overflow = !nan;
    return 1;
}

/* Rows ahead whose cache lines integer_rows8 asks for (even): its divisions keep the
 * reorder buffer too full for the loads of rows far enough ahead to be in flight, so the
 * hardware prefetcher alone left memory's latency and the arithmetic one after the other
 * (measured on one thread, 10 M rows: 88 M rows/s without, 101 to 108 M with 16 to 256 rows
 * ahead, 119 M with the rows in cache). It changes no result. */
#ifndef INTEGER_PREFETCH_ROWS
#define INTEGER_PREFETCH_ROWS 64
#endif

/* Rows per block of integer_rows8 (even), checked once for a NaN or an accumulator out of
 * range: a branch per row, measured, made it 30 % slower. */
#define CHECK_ROWS 64

/* The first row of a block that *s records (NaN or out of range), found by code_row. */
static Py_ssize_t first_bad_row(const double *x, Py_ssize_t start, Py_ssize_t stop,
                                const Coding *c, double bias, Status *s) {
    for (Py_ssize_t r = start; r < stop; r++) {
        double acc;
        int nan = code_row(x + c->k * r, c, NULL, &acc) == HAS_NAN;
        if (record(s, r, nan, acc + bias)) {
            return r;
        }
    }
    return stop;
}

#ifdef HAVE_SSE2
/* code_row's predictions for 8 features in SSE2 registers (every x86-64 CPU has them; the
 * compiler does not vectorize the scalar loop's selects), two rows at a time, one in each
 * lane: 4x faster, measured, than the two lanes taking two features of one row. max and
 * min are code_row's selects exactly (each returns its second operand when the first is
 * NaN, and a block with a NaN is redone by code_row); the sum is exact in any order. Rows
 * in pairs; returns the rows done (n rounded down to even, or fewer if *s recorded one). */
static Py_ssize_t integer_rows8(const double *x, Py_ssize_t n, const Coding *c, double bias,
                                double output_scale, double *y, Status *s) {
    const double *lo = c->lo.buf, *scale = c->scale.buf;
    const __m128d zero = _mm_setzero_pd(), levels = _mm_set1_pd(c->levels);
    const __m128d rounder = _mm_set1_pd(ROUNDER), offset = _mm_set1_pd(bias);
    const __m128d rescale = _mm_set1_pd(output_scale);
    __m128d L[8], S[8], W[8];
    for (int j = 0; j < 8; j++) {
        L[j] = _mm_set1_pd(lo[j]);
        S[j] = _mm_set1_pd(scale[j]);
        W[j] = _mm_set1_pd(c->w[j]);
    }
    Py_ssize_t pairs = n - n % 2;
    for (Py_ssize_t start = 0; start < pairs; start += CHECK_ROWS) {
        Py_ssize_t stop = pairs - start < CHECK_ROWS ? pairs : start + CHECK_ROWS;
        __m128d nan = zero, low = offset, high = offset;
        for (Py_ssize_t r = start; r < stop; r += 2) {
            const double *a = x + 8 * r, *b = a + 8;
            if (r + INTEGER_PREFETCH_ROWS + 1 < n) {
                PREFETCH(a + 8 * INTEGER_PREFETCH_ROWS);
                PREFETCH(b + 8 * INTEGER_PREFETCH_ROWS);
            }
            __m128d sum = zero;
            for (int j = 0; j < 8; j += 2) {
                __m128d u = _mm_loadu_pd(a + j), v = _mm_loadu_pd(b + j);
                WHOLE_LOADS(u, v);
                __m128d t0 = _mm_div_pd(_mm_sub_pd(_mm_unpacklo_pd(u, v), L[j]), S[j]);
                __m128d t1 = _mm_div_pd(_mm_sub_pd(_mm_unpackhi_pd(u, v), L[j + 1]), S[j + 1]);
                nan = _mm_or_pd(nan, _mm_or_pd(_mm_cmpunord_pd(t0, t0), _mm_cmpunord_pd(t1, t1)));
                __m128d q0 = _mm_min_pd(_mm_max_pd(t0, zero), levels);
                __m128d q1 = _mm_min_pd(_mm_max_pd(t1, zero), levels);
                q0 = _mm_sub_pd(_mm_add_pd(q0, rounder), rounder);
                q1 = _mm_sub_pd(_mm_add_pd(q1, rounder), rounder);
                sum = _mm_add_pd(sum, _mm_add_pd(_mm_mul_pd(q0, W[j]), _mm_mul_pd(q1, W[j + 1])));
            }
            __m128d acc = _mm_add_pd(sum, offset);
            low = _mm_min_pd(low, acc);
            high = _mm_max_pd(high, acc);
            _mm_storeu_pd(y + r, _mm_mul_pd(rescale, acc));
        }
        low = _mm_min_sd(low, _mm_unpackhi_pd(low, low));
        high = _mm_max_sd(high, _mm_unpackhi_pd(high, high));
        if (_mm_movemask_pd(nan) || _mm_cvtsd_f64(low) < INT32_MIN ||
            _mm_cvtsd_f64(high) > INT32_MAX) {
            return first_bad_row(x, start, stop, c, bias, s);
        }
    }
    return pairs;
}
#endif

/* An IntegerLinear's predictions of n rows into y; stops at the first row that *s records. */
static void integer_rows(const double *x, Py_ssize_t n, const Coding *c, double bias,
                         double output_scale, double *y, Status *s) {
    Py_ssize_t r = 0;
#ifdef HAVE_SSE2
    if (c->k == 8) {
        r = integer_rows8(x, n, c, bias, output_scale, y, s);
    }
#endif
    for (; r < n && !s->nan && !s->overflow; r++) {
        double acc;
        int nan = code_row(x + c->k * r, c, NULL, &acc) == HAS_NAN;
        acc += bias;
        if (record(s, r, nan, acc)) {
            return;
        }
        y[r] = output_scale * acc;
    }
}

static PyObject *raise_status(const Status *s) {
    if (s->nan) {
        return PyErr_Format(PyExc_ValueError, "row %zd has a NaN input", s->row);
    }
    return PyErr_Format(PyExc_OverflowError,
                        "integer accumulator left the int32 range (row %zd)", s->row);
}

static PyObject *integer_predict(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *X_obj, *lo_obj, *scale_obj, *w_obj, *out_obj;
    int bits;
    long long bias;
    double output_scale;
    if (!PyArg_ParseTuple(args, "OOOOiLdO:integer_predict", &X_obj, &lo_obj, &scale_obj,
                          &w_obj, &bits, &bias, &output_scale, &out_obj)) {
        return NULL;
    }
    if (bias > INT32_MAX || bias < INT32_MIN) {
        return PyErr_Format(PyExc_ValueError, "bias_code %lld is outside the int32 range",
                            bias);
    }
    Coding c;
    Py_buffer X, out;
    if (get_coding(lo_obj, scale_obj, w_obj, bits, &c) != 0) {
        return NULL;
    }
    if (get_array(X_obj, &X, 'd', 2, 0, "X") != 0) {
        release_coding(&c);
        return NULL;
    }
    if (get_array(out_obj, &out, 'd', 1, 1, "out") != 0) {
        release_coding(&c);
        PyBuffer_Release(&X);
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t n = dim(&X, 0);
    if (check_rows(&X, &c) != 0) {
        goto done;
    }
    if (dim(&out, 0) != n) {
        PyErr_Format(PyExc_ValueError, "out must have %zd rows, got %zd", n, dim(&out, 0));
        goto done;
    }
    Status s = {0, 0, 0};
    Py_BEGIN_ALLOW_THREADS;
    integer_rows(X.buf, n, &c, (double)bias, output_scale, out.buf, &s);
    Py_END_ALLOW_THREADS;
    if (s.nan || s.overflow) {
        raise_status(&s);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    release_coding(&c);
    PyBuffer_Release(&X);
    PyBuffer_Release(&out);
    return result;
}

static void code_rows(const double *x, Py_ssize_t n, const Coding *c, int64_t *codes,
                      char *saturated, double *row, Status *s) {
    for (Py_ssize_t r = 0; r < n; r++) {
        double acc;
        int status = code_row(x + c->k * r, c, row, &acc);
        if (status == HAS_NAN) {
            s->row = r;
            s->nan = 1;
            return;
        }
        for (Py_ssize_t j = 0; j < c->k; j++) {
            codes[c->k * r + j] = (int64_t)row[j];
        }
        saturated[r] = (char)(status == SATURATED);
    }
}

static PyObject *input_codes(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *X_obj, *lo_obj, *scale_obj, *w_obj, *codes_obj, *saturated_obj;
    int bits;
    if (!PyArg_ParseTuple(args, "OOOOiOO:input_codes", &X_obj, &lo_obj, &scale_obj, &w_obj,
                          &bits, &codes_obj, &saturated_obj)) {
        return NULL;
    }
    Coding c;
    Py_buffer X, codes, sat;
    if (get_coding(lo_obj, scale_obj, w_obj, bits, &c) != 0) {
        return NULL;
    }
    if (get_array(X_obj, &X, 'd', 2, 0, "X") != 0) {
        release_coding(&c);
        return NULL;
    }
    if (get_array(codes_obj, &codes, 'q', 2, 1, "codes") != 0) {
        release_coding(&c);
        PyBuffer_Release(&X);
        return NULL;
    }
    if (get_array(saturated_obj, &sat, '?', 1, 1, "saturated") != 0) {
        release_coding(&c);
        PyBuffer_Release(&X);
        PyBuffer_Release(&codes);
        return NULL;
    }
    PyObject *result = NULL;
    double *row = NULL;
    Py_ssize_t n = dim(&X, 0), k = c.k;
    if (check_rows(&X, &c) != 0) {
        goto done;
    }
    if (dim(&codes, 0) != n || dim(&codes, 1) != k || dim(&sat, 0) != n) {
        PyErr_Format(PyExc_ValueError, "codes must be (%zd, %zd) and saturated (%zd,)", n, k,
                     n);
        goto done;
    }
    if ((row = PyMem_RawMalloc((size_t)(k ? k : 1) * sizeof(double))) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Status s = {0, 0, 0};
    Py_BEGIN_ALLOW_THREADS;
    code_rows(X.buf, n, &c, codes.buf, sat.buf, row, &s);
    Py_END_ALLOW_THREADS;
    if (s.nan) {
        raise_status(&s);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_RawFree(row);
    release_coding(&c);
    PyBuffer_Release(&X);
    PyBuffer_Release(&codes);
    PyBuffer_Release(&sat);
    return result;
}

/* -- CSV numbers ------------------------------------------------------------------------ */

/* The plainest CSV, read at C speed; quantpipe.tables reads everything else. A line is blank
 * (spaces, tabs, '\r' only) or `columns` fields separated by ',', each a decimal number
 * [+-]?(digits[.digits?] | .digits)([eE][+-]?digits)? with spaces, tabs or '\r' around it.
 * The values are Python's float()'s, which rounds correctly: a number of at most 19
 * significant digits and a decimal exponent within +-19 is rounded here, exactly (csv_exact);
 * any other goes to strtod, correctly rounded in glibc, and a conversion that does not end
 * where the scan did (a locale with another decimal point), overflows or underflows gives up.
 * Giving up is never an error: the caller then reads the text line by line. */

static inline int csv_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }
static inline int csv_digit(char c) { return c >= '0' && c <= '9'; }

/* A number's decimal parts: [sign] digits, the exponent of their last digit, and where it ends;
 * 0 if the text at s is no number. w holds the first 19 significant digits, `more` whether any
 * nonzero digit followed them; `wild` an exponent beyond any double's. */
typedef struct {
    const char *end;
    uint64_t w;
    int64_t e10;
    int negative, more, wild;
} Decimal;

static int csv_scan(const char *s, Decimal *d) {
    const char *p = s;
    d->negative = *p == '-';
    p += *p == '+' || *p == '-';
    d->w = 0;
    d->e10 = 0;
    d->more = d->wild = 0;
    int significant = 0, any_digit = 0;
    for (int fraction = 0;; p++) {
        if (*p == '.' && !fraction) {
            fraction = 1;
            continue;
        }
        if (!csv_digit(*p)) break;
        any_digit = 1;
        if (significant < 19 && (d->w != 0 || *p != '0')) {
            d->w = d->w * 10 + (uint64_t)(*p - '0');
            significant += d->w != 0;
            d->e10 -= fraction;
        } else if (significant >= 19) {
            d->more |= *p != '0';
            d->e10 += !fraction;
        } else {
            d->e10 -= fraction; /* a leading zero after the point */
        }
    }
    if (!any_digit) return 0;
    if (*p == 'e' || *p == 'E') {
        const char *e = p + 1;
        int minus = *e == '-';
        e += *e == '+' || *e == '-';
        const char *first = e;
        int64_t exponent = 0;
        for (; csv_digit(*e); e++) {
            if (exponent < 100000) exponent = exponent * 10 + (*e - '0');
        }
        if (e == first) return 0;
        d->wild = exponent >= 100000;
        d->e10 += minus ? -exponent : exponent;
        p = e;
    }
    d->end = p;
    return 1;
}

#ifdef __SIZEOF_INT128__
typedef unsigned __int128 u128;

static int bit_length(u128 m) {
    uint64_t high = (uint64_t)(m >> 64);
    return high ? 128 - __builtin_clzll(high) : (m ? 64 - __builtin_clzll((uint64_t)m) : 0);
}

/* (m + a fraction, nonzero if sticky) * 2**exp2, rounded to the nearest double, ties to even;
 * m > 0, and with more than 55 bits where sticky is set. */
static double rounded(u128 m, int exp2, int sticky) {
    int shift = bit_length(m) - 53;
    if (shift <= 0) return ldexp((double)(uint64_t)m, exp2);
    u128 half = (u128)1 << (shift - 1), rest = m & (((u128)1 << shift) - 1);
    uint64_t keep = (uint64_t)(m >> shift);
    keep += rest > half || (rest == half && (sticky || (keep & 1)));
    return ldexp((double)keep, exp2 + shift);
}
#endif

static const double EXACT_POWERS[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                      1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                      1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The double nearest the decimal, exactly, where cheap integer arithmetic can tell: 0 then,
 * -1 where only strtod can. */
static int csv_exact(const Decimal *d, double *value) {
    if (d->more || d->wild) return -1;
    double v;
    if (d->w == 0) {
        v = 0.0;
    } else if (d->w <= ((uint64_t)1 << 53) && d->e10 >= -22 && d->e10 <= 22) {
        /* both exact doubles, so one correctly rounded operation (Clinger's fast path) */
        v = d->e10 < 0 ? (double)d->w / EXACT_POWERS[-d->e10] : (double)d->w * EXACT_POWERS[d->e10];
#ifdef __SIZEOF_INT128__
    } else if (d->e10 >= 0 && d->e10 <= 19) { /* w * 10**e10 < 2**128, exactly */
        u128 power = 1;
        for (int64_t i = 0; i < d->e10; i++) power *= 10;
        v = rounded((u128)d->w * power, 0, 0);
    } else if (d->e10 < 0 && d->e10 >= -19) { /* w / 10**-e10 with 56 or 57 quotient bits */
        uint64_t divisor = 1;
        for (int64_t i = 0; i < -d->e10; i++) divisor *= 10;
        int s = 56 + bit_length(divisor) - bit_length(d->w); /* at most 119: n < 2**120 */
        s = s < 0 ? 0 : s;                                    /* a long w: enough bits already */
        u128 n = (u128)d->w << s;
        v = rounded(n / divisor, -s, n % divisor != 0);
#endif
    } else {
        return -1;
    }
    *value = d->negative ? -v : v;
    return 0;
}

/* One field at *s into *value; *s is left after it. 0 on success, -1 to give up. */
static int csv_field(const char **s, double *value) {
    const char *p = *s;
    while (csv_space(*p)) p++;
    Decimal d;
    if (!csv_scan(p, &d)) return -1;
    double v;
    if (csv_exact(&d, &v) != 0) {
        char *stop;
        errno = 0;
        v = strtod(p, &stop);
        if (stop != d.end || errno != 0 || !isfinite(v)) return -1;
    }
    const char *end = d.end;
    while (csv_space(*end)) end++;
    *value = v;
    *s = end;
    return 0;
}

/* The rows of text[0, end) (ASCII, a NUL at end; a NUL before it gives up) into out, at most
 * capacity rows: the number of rows, or -1 to give up. */
static Py_ssize_t csv_rows(const char *text, const char *end, Py_ssize_t columns, double *out,
                           Py_ssize_t capacity) {
    Py_ssize_t rows = 0;
    const char *p = text;
    while (p < end) {
        const char *q = p;
        while (csv_space(*q)) q++;
        if (*q == '\n' || q == end) { /* a blank line */
            p = q == end ? q : q + 1;
            continue;
        }
        if (rows == capacity) return -1;
        double *row = out + rows * columns;
        for (Py_ssize_t j = 0; j < columns; j++) {
            if (csv_field(&p, &row[j]) != 0) return -1;
            char want = j + 1 < columns ? ',' : '\n';
            if (*p == want) {
                p++;
            } else if (!(want == '\n' && p == end)) { /* the last line may lack its '\n' */
                return -1;
            }
        }
        rows++;
    }
    return rows;
}

static PyObject *csv_floats(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *text, *out_obj;
    Py_ssize_t columns;
    if (!PyArg_ParseTuple(args, "UnO", &text, &columns, &out_obj)) return NULL;
    if (columns < 1) {
        PyErr_SetString(PyExc_ValueError, "columns must be at least 1");
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(text)) return PyLong_FromSsize_t(-1); /* not for this reader */
    Py_buffer out;
    if (get_array(out_obj, &out, 'd', 2, 1, "out") != 0) return NULL;
    if (dim(&out, 1) != columns) {
        PyBuffer_Release(&out);
        return PyErr_Format(PyExc_ValueError, "out has %zd columns, expected %zd", dim(&out, 1),
                            columns);
    }
    const char *chars = (const char *)PyUnicode_DATA(text); /* ASCII: one byte a character */
    Py_ssize_t rows;
    Py_BEGIN_ALLOW_THREADS;
    rows = csv_rows(chars, chars + PyUnicode_GET_LENGTH(text), columns, (double *)out.buf,
                    dim(&out, 0));
    Py_END_ALLOW_THREADS;
    PyBuffer_Release(&out);
    return PyLong_FromSsize_t(rows);
}

/* -- the module ------------------------------------------------------------------------ */

static PyMethodDef methods[] = {
    {"row_dot", row_dot, METH_VARARGS,
     "row_dot(X, w, out, offset): out[i] = tree sum of X[i, j] * w[j], plus offset if it "
     "is not zero (see quantpipe.numerics.row_dot); returns the first i whose out[i] is "
     "not finite, or -1."},
    {"integer_predict", integer_predict, METH_VARARGS,
     "integer_predict(X, input_lo, input_scale, weight_codes, bits, bias_code, "
     "output_scale, out): an IntegerLinear's predictions into out."},
    {"input_codes", input_codes, METH_VARARGS,
     "input_codes(X, input_lo, input_scale, weight_codes, bits, codes, saturated): an "
     "IntegerLinear's input codes and saturated rows into codes and saturated."},
    {"csv_floats", csv_floats, METH_VARARGS,
     "csv_floats(text, columns, out): the rows of a plain CSV of numbers (no header) into "
     "out, float64 (capacity, columns); returns the number of rows, or -1 where "
     "quantpipe.tables must read the text itself."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_quantpipe_kernels",
    .m_doc = "The linear predictors' inner loops, and the reader of plain CSV numbers.",
    .m_size = -1,
    .m_methods = methods,
};

#ifndef KERNELS_SOURCE_SHA256
#define KERNELS_SOURCE_SHA256 "unknown"
#endif
#ifndef KERNELS_FLAGS
#define KERNELS_FLAGS ""
#endif

PyMODINIT_FUNC PyInit__quantpipe_kernels(void) {
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && (PyModule_AddStringConstant(m, "SOURCE_SHA256", KERNELS_SOURCE_SHA256) != 0 ||
                      PyModule_AddStringConstant(m, "FLAGS", KERNELS_FLAGS) != 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
