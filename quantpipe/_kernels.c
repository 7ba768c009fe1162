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
#include <string.h>

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

/* -- instruction-set paths -------------------------------------------------------------- */

/* The 8-feature loops (the linear models of California Housing's 8 features) also have
 * versions for AVX2 and AVX-512F, compiled for them by target attributes in this one build
 * and chosen when the module loads by what the CPU runs (__builtin_cpu_supports, which also
 * asks the OS whether it saves the wider registers). A vector lane holds one row, never a
 * part of one row's sum: each lane's instruction is the same correctly rounded IEEE operation
 * on the same operands, in the same order, as the baseline's scalar one, so every path gives
 * every row the same bits (but a NaN's sign and payload, which C leaves to the compiler on
 * any path and no prediction returns: tests/test_numerics.py and tests/test_quantization.py run each
 * path this CPU has against the baseline; the cross-cpu check runs the baseline and AVX2
 * under emulated CPUs). target("avx512f") also enables FMA, which -ffp-contract=off keeps
 * unused. Batches under VECTOR_ROWS rows stay on the baseline: a 1-row request needs no
 * wide registers (on some Intel CPUs their first use slows the core for a while). */
/* GCC 8 (whose __builtin_cpu_supports first asked the OS, GCC bug 85100) and clang 6 or
 * newer, not for the MSVC ABI (clang-cl links no __cpu_model): elsewhere only the baseline. */
#if defined(__x86_64__) && !defined(_MSC_VER) &&                                            \
    ((defined(__clang__) && __clang_major__ >= 6) || (!defined(__clang__) && __GNUC__ >= 8))
#include <immintrin.h>
#define HAVE_X86_PATHS 1
#define TARGET_AVX2 __attribute__((target("avx2")))
#define TARGET_AVX512 __attribute__((target("avx512f")))
#endif
enum { PATH_BASELINE, PATH_AVX2, PATH_AVX512, PATH_COUNT };
static const char *const PATH_NAMES[PATH_COUNT] = {"baseline", "avx2", "avx512"};
#define VECTOR_ROWS 32

static int path_supported(int path) {
#ifdef HAVE_X86_PATHS
    __builtin_cpu_init();
    if (path == PATH_AVX2) {
        return __builtin_cpu_supports("avx2");
    }
    if (path == PATH_AVX512) { /* whose long float outputs go by the AVX2 loop */
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2");
    }
#endif
    return path == PATH_BASELINE;
}

/* The fastest path this CPU runs; set when the module loads. */
static int fastest_path = PATH_BASELINE;

/* The path named, or the fastest if name is NULL; -1 with ValueError if this CPU does not
 * run it. */
static int get_path(const char *name) {
    if (name == NULL) {
        return fastest_path;
    }
    for (int path = 0; path < PATH_COUNT; path++) {
        if (strcmp(name, PATH_NAMES[path]) == 0) {
            if (path_supported(path)) {
                return path;
            }
            PyErr_Format(PyExc_ValueError, "this CPU does not run the %s path", name);
            return -1;
        }
    }
    PyErr_Format(PyExc_ValueError, "no kernel path is named '%s' (baseline, avx2, avx512)",
                 name);
    return -1;
}

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

#ifdef HAVE_X86_PATHS
/* Outputs of at least this many rows (2 MB, past a core's L2 cache) are written by
 * non-temporal stores, which skip the read of each output line that an ordinary store
 * makes first: an eighth of the memory traffic of 8 features. (Measured on one thread,
 * 10 M rows into one array: 500 M rows/s with ordinary stores, 554 to 575 M with these.)
 * Smaller outputs stay in the cache for the caller, who reads them next. */
#define STREAM_ROWS (1 << 18)

/* The rows before out + rows is aligned to `bytes`, or -1 where out is not to be streamed
 * (too few rows, or not even aligned to its doubles). */
static Py_ssize_t stream_head(const double *out, Py_ssize_t n, size_t bytes) {
    uintptr_t address = (uintptr_t)out;
    if (n < STREAM_ROWS || address % sizeof(double) != 0) {
        return -1;
    }
    return (Py_ssize_t)(((bytes - address % bytes) % bytes) / sizeof(double));
}

/* dot8's trees of four rows, their halves' products p_j (j < 4) in lo[i] and p_{j+4} in
 * hi[i]: s_j = p_j + p_{j+4}, then (s0 + s2) + (s1 + s3), each row in a lane of its own. */
TARGET_AVX2 static inline __m256d row_sums4(const __m256d lo[4], const __m256d hi[4]) {
    __m256d s0 = _mm256_add_pd(lo[0], hi[0]), s1 = _mm256_add_pd(lo[1], hi[1]);
    __m256d s2 = _mm256_add_pd(lo[2], hi[2]), s3 = _mm256_add_pd(lo[3], hi[3]);
    /* [s0 s1] + [s2 s3] of rows 0 and 1, then of rows 2 and 3: [t0 t1] of each row */
    __m256d t01 = _mm256_add_pd(_mm256_permute2f128_pd(s0, s1, 0x20),
                                _mm256_permute2f128_pd(s0, s1, 0x31));
    __m256d t23 = _mm256_add_pd(_mm256_permute2f128_pd(s2, s3, 0x20),
                                _mm256_permute2f128_pd(s2, s3, 0x31));
    /* t0 + t1 of rows 0, 2, 1, 3, put in order */
    __m256d y = _mm256_add_pd(_mm256_unpacklo_pd(t01, t23), _mm256_unpackhi_pd(t01, t23));
    return _mm256_permute4x64_pd(y, 0xD8);
}

/* dot_rows8 on AVX2, four rows at a time. */
TARGET_AVX2 static double dot_rows8_avx2(const double *X, Py_ssize_t n, const double *w,
                                         double offset, double *out) {
    Py_ssize_t head = stream_head(out, n, 32), r = head > 0 ? head : 0;
    double check = dot_span8(X, 0, r, w, offset, out, 0);
    const __m256d wl = _mm256_loadu_pd(w), wh = _mm256_loadu_pd(w + 4);
    const __m256d off = _mm256_set1_pd(offset), zero = _mm256_setzero_pd();
    __m256d checks = zero;
    for (; r + 4 <= n; r += 4) {
        const double *x = X + 8 * r;
        if (r + 4 + PREFETCH_ROWS <= n) {
            for (int i = 0; i < 4; i++) {
                PREFETCH(x + 8 * (PREFETCH_ROWS + i));
            }
        }
        __m256d lo[4], hi[4];
        for (int i = 0; i < 4; i++) {
            lo[i] = _mm256_mul_pd(_mm256_loadu_pd(x + 8 * i), wl);
            hi[i] = _mm256_mul_pd(_mm256_loadu_pd(x + 8 * i + 4), wh);
        }
        __m256d y = row_sums4(lo, hi);
        y = offset != 0.0 ? _mm256_add_pd(y, off) : y;
        checks = _mm256_add_pd(checks, _mm256_mul_pd(y, zero));
        if (head >= 0) {
            _mm256_stream_pd(out + r, y);
        } else {
            _mm256_storeu_pd(out + r, y);
        }
    }
    if (head >= 0) {
        _mm_sfence();
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, checks);
    check = check + ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]));
    return check + dot_span8(X, r, n, w, offset, out, 0);
}

/* dot8's trees of eight rows, row i's products in p[i]: the same sums as row_sums4. */
TARGET_AVX512 static inline __m512d row_sums8(const __m512d p[8]) {
    /* [p0..p3 of row a, of row b] + [p4..p7 of row a, of row b]: s_j of rows a and b */
    __m512d s[4];
    for (int i = 0; i < 4; i++) {
        s[i] = _mm512_add_pd(_mm512_shuffle_f64x2(p[2 * i], p[2 * i + 1], 0x44),
                             _mm512_shuffle_f64x2(p[2 * i], p[2 * i + 1], 0xEE));
    }
    /* [s0 s1] + [s2 s3] of four rows: t0 and t1 of each, then t0 + t1 of all eight */
    const __m512i first = _mm512_set_epi64(13, 12, 9, 8, 5, 4, 1, 0);
    const __m512i second = _mm512_set_epi64(15, 14, 11, 10, 7, 6, 3, 2);
    __m512d t[2];
    for (int i = 0; i < 2; i++) {
        t[i] = _mm512_add_pd(_mm512_permutex2var_pd(s[2 * i], first, s[2 * i + 1]),
                             _mm512_permutex2var_pd(s[2 * i], second, s[2 * i + 1]));
    }
    const __m512i even = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1);
    return _mm512_add_pd(_mm512_permutex2var_pd(t[0], even, t[1]),
                         _mm512_permutex2var_pd(t[0], odd, t[1]));
}

/* dot_rows8 on AVX-512F, eight rows at a time, for outputs that stay in the cache (see
 * dot_rows8_by: longer ones go by dot_rows8_avx2). */
TARGET_AVX512 static double dot_rows8_avx512(const double *X, Py_ssize_t n, const double *w,
                                             double offset, double *out) {
    const __m512d W = _mm512_loadu_pd(w), off = _mm512_set1_pd(offset);
    const __m512d zero = _mm512_setzero_pd();
    __m512d checks = zero;
    Py_ssize_t r = 0;
    for (; r + 8 <= n; r += 8) {
        const double *x = X + 8 * r;
        if (r + 8 + PREFETCH_ROWS <= n) {
            for (int i = 0; i < 8; i++) {
                PREFETCH(x + 8 * (PREFETCH_ROWS + i));
            }
        }
        __m512d p[8];
        for (int i = 0; i < 8; i++) {
            p[i] = _mm512_mul_pd(_mm512_loadu_pd(x + 8 * i), W);
        }
        __m512d y = row_sums8(p);
        y = offset != 0.0 ? _mm512_add_pd(y, off) : y;
        checks = _mm512_add_pd(checks, _mm512_mul_pd(y, zero));
        _mm512_storeu_pd(out + r, y);
    }
    double lanes[8], check = 0.0;
    _mm512_storeu_pd(lanes, checks);
    for (int i = 0; i < 8; i++) {
        check = check + lanes[i];
    }
    return check + dot_span8(X, r, n, w, offset, out, 0);
}
#endif

/* dot_rows8 by the path given (see get_path). On the AVX-512 path, an output long enough to
 * be streamed past the cache (STREAM_ROWS) goes by the AVX2 loop, which was the faster of the
 * two out of the cache on the Zen 5 EPYCs measured (medians of 15 alternating calls, 10 M
 * rows into a preallocated out: 501 against 461 M rows/s on one, 476 against 436 on
 * another). On rows in the cache (200,000, called again and again) AVX-512 was the faster on
 * the first (957 against 798) and within the noise on the other (729 against 707, then 787
 * against 822), so it keeps them. The bits are the same. */
static double dot_rows8_by(int path, const double *X, Py_ssize_t n, const double *w,
                           double offset, double *out) {
#ifdef HAVE_X86_PATHS
    if (n >= VECTOR_ROWS && n < STREAM_ROWS && path == PATH_AVX512) {
        return dot_rows8_avx512(X, n, w, offset, out);
    }
    if (n >= VECTOR_ROWS && path >= PATH_AVX2) {
        return dot_rows8_avx2(X, n, w, offset, out);
    }
#endif
    (void)path;
    return dot_rows8(X, n, w, offset, out);
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
    const char *path_name = NULL;
    if (!PyArg_ParseTuple(args, "OOOd|z:row_dot", &X_obj, &w_obj, &out_obj, &offset,
                          &path_name)) {
        return NULL;
    }
    int path = get_path(path_name);
    if (path < 0) {
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
        check = dot_rows8_by(path, X.buf, n, w.buf, offset, out.buf);
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


#ifdef HAVE_X86_PATHS
/* integer_rows8 on AVX2: a row's 8 features in two vectors of 4, its codes' products summed
 * by row_sums4 (exact in any order), four rows at a time; rows in fours, returns the rows
 * done (n rounded down to a multiple of 4, or fewer if *s recorded one). */
TARGET_AVX2 static Py_ssize_t integer_rows8_avx2(const double *x, Py_ssize_t n,
                                                 const Coding *c, double bias,
                                                 double output_scale, double *y, Status *s) {
    const double *lo = c->lo.buf, *scale = c->scale.buf;
    const __m256d L[2] = {_mm256_loadu_pd(lo), _mm256_loadu_pd(lo + 4)};
    const __m256d S[2] = {_mm256_loadu_pd(scale), _mm256_loadu_pd(scale + 4)};
    const __m256d W[2] = {_mm256_loadu_pd(c->w), _mm256_loadu_pd(c->w + 4)};
    const __m256d zero = _mm256_setzero_pd(), levels = _mm256_set1_pd(c->levels);
    const __m256d rounder = _mm256_set1_pd(ROUNDER), offset = _mm256_set1_pd(bias);
    const __m256d rescale = _mm256_set1_pd(output_scale);
    Py_ssize_t rows = n - n % 4;
    for (Py_ssize_t start = 0; start < rows; start += CHECK_ROWS) {
        Py_ssize_t stop = rows - start < CHECK_ROWS ? rows : start + CHECK_ROWS;
        __m256d nan = zero, low = offset, high = offset;
        for (Py_ssize_t r = start; r < stop; r += 4) {
            const double *row = x + 8 * r;
            if (r + 4 + INTEGER_PREFETCH_ROWS <= n) {
                for (int i = 0; i < 4; i++) {
                    PREFETCH(row + 8 * (INTEGER_PREFETCH_ROWS + i));
                }
            }
            __m256d p[2][4];
            for (int i = 0; i < 4; i++) {
                for (int h = 0; h < 2; h++) {
                    __m256d t = _mm256_sub_pd(_mm256_loadu_pd(row + 8 * i + 4 * h), L[h]);
                    t = _mm256_div_pd(t, S[h]);
                    nan = _mm256_or_pd(nan, _mm256_cmp_pd(t, t, _CMP_UNORD_Q));
                    __m256d q = _mm256_min_pd(_mm256_max_pd(t, zero), levels);
                    q = _mm256_sub_pd(_mm256_add_pd(q, rounder), rounder);
                    p[h][i] = _mm256_mul_pd(q, W[h]);
                }
            }
            __m256d acc = _mm256_add_pd(row_sums4(p[0], p[1]), offset);
            low = _mm256_min_pd(low, acc);
            high = _mm256_max_pd(high, acc);
            _mm256_storeu_pd(y + r, _mm256_mul_pd(rescale, acc));
        }
        double lows[4], highs[4];
        _mm256_storeu_pd(lows, low);
        _mm256_storeu_pd(highs, high);
        int bad = _mm256_movemask_pd(nan);
        for (int i = 0; i < 4; i++) {
            bad |= lows[i] < INT32_MIN || highs[i] > INT32_MAX;
        }
        if (bad) {
            return first_bad_row(x, start, stop, c, bias, s);
        }
    }
    return rows;
}

/* integer_rows8 on AVX-512F: a row's 8 features in one vector, eight rows at a time; rows in
 * eights, returns the rows done (n rounded down to a multiple of 8, or fewer if *s recorded
 * one). */
TARGET_AVX512 static Py_ssize_t integer_rows8_avx512(const double *x, Py_ssize_t n,
                                                     const Coding *c, double bias,
                                                     double output_scale, double *y,
                                                     Status *s) {
    const __m512d L = _mm512_loadu_pd(c->lo.buf), S = _mm512_loadu_pd(c->scale.buf);
    const __m512d W = _mm512_loadu_pd(c->w);
    const __m512d zero = _mm512_setzero_pd(), levels = _mm512_set1_pd(c->levels);
    const __m512d rounder = _mm512_set1_pd(ROUNDER), offset = _mm512_set1_pd(bias);
    const __m512d rescale = _mm512_set1_pd(output_scale);
    Py_ssize_t rows = n - n % 8;
    for (Py_ssize_t start = 0; start < rows; start += CHECK_ROWS) {
        Py_ssize_t stop = rows - start < CHECK_ROWS ? rows : start + CHECK_ROWS;
        __mmask8 nan = 0;
        __m512d low = offset, high = offset;
        for (Py_ssize_t r = start; r < stop; r += 8) {
            const double *row = x + 8 * r;
            if (r + 8 + INTEGER_PREFETCH_ROWS <= n) {
                for (int i = 0; i < 8; i++) {
                    PREFETCH(row + 8 * (INTEGER_PREFETCH_ROWS + i));
                }
            }
            __m512d p[8];
            for (int i = 0; i < 8; i++) {
                __m512d t = _mm512_div_pd(_mm512_sub_pd(_mm512_loadu_pd(row + 8 * i), L), S);
                nan |= _mm512_cmp_pd_mask(t, t, _CMP_UNORD_Q);
                __m512d q = _mm512_min_pd(_mm512_max_pd(t, zero), levels);
                q = _mm512_sub_pd(_mm512_add_pd(q, rounder), rounder);
                p[i] = _mm512_mul_pd(q, W);
            }
            __m512d acc = _mm512_add_pd(row_sums8(p), offset);
            low = _mm512_min_pd(low, acc);
            high = _mm512_max_pd(high, acc);
            _mm512_storeu_pd(y + r, _mm512_mul_pd(rescale, acc));
        }
        if (nan || _mm512_reduce_min_pd(low) < INT32_MIN ||
            _mm512_reduce_max_pd(high) > INT32_MAX) {
            return first_bad_row(x, start, stop, c, bias, s);
        }
    }
    return rows;
}
#endif

/* An IntegerLinear's predictions of n rows into y, by the path given (see get_path); stops
 * at the first row that *s records. */
static void integer_rows(const double *x, Py_ssize_t n, const Coding *c, double bias,
                         double output_scale, double *y, Status *s, int path) {
    Py_ssize_t r = 0;
#ifdef HAVE_X86_PATHS
    if (c->k == 8 && n >= VECTOR_ROWS && path == PATH_AVX512) {
        r = integer_rows8_avx512(x, n, c, bias, output_scale, y, s);
    } else if (c->k == 8 && n >= VECTOR_ROWS && path == PATH_AVX2) {
        r = integer_rows8_avx2(x, n, c, bias, output_scale, y, s);
    }
#endif
    (void)path;
#ifdef HAVE_SSE2
    if (c->k == 8 && r < n && !s->nan && !s->overflow) { /* the rows left, in pairs */
        Py_ssize_t done = integer_rows8(x + 8 * r, n - r, c, bias, output_scale, y + r, s);
        if (s->nan || s->overflow) {
            s->row += r;
        }
        r += done;
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
    const char *path_name = NULL;
    if (!PyArg_ParseTuple(args, "OOOOiLdO|z:integer_predict", &X_obj, &lo_obj, &scale_obj,
                          &w_obj, &bits, &bias, &output_scale, &out_obj, &path_name)) {
        return NULL;
    }
    int path = get_path(path_name);
    if (path < 0) {
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
    integer_rows(X.buf, n, &c, (double)bias, output_scale, out.buf, &s, path);
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
     "row_dot(X, w, out, offset, path=None): out[i] = tree sum of X[i, j] * w[j], plus "
     "offset if it is not zero (see quantpipe.numerics.row_dot), by the kernel path named "
     "(one of PATHS; None: PATH); returns the first i whose out[i] is not finite, or -1."},
    {"integer_predict", integer_predict, METH_VARARGS,
     "integer_predict(X, input_lo, input_scale, weight_codes, bits, bias_code, "
     "output_scale, out, path=None): an IntegerLinear's predictions into out, by the "
     "kernel path named (one of PATHS; None: PATH)."},
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

/* PATHS: the names of the kernel paths this CPU runs, slowest first; PATH: the fastest. */
static PyObject *supported_paths(void) {
    PyObject *paths = PyList_New(0);
    for (int path = 0; paths != NULL && path < PATH_COUNT; path++) {
        if (path_supported(path)) {
            fastest_path = path;
            PyObject *name = PyUnicode_FromString(PATH_NAMES[path]);
            if (name == NULL || PyList_Append(paths, name) != 0) {
                Py_XDECREF(name);
                Py_CLEAR(paths);
                break;
            }
            Py_DECREF(name);
        }
    }
    if (paths == NULL) {
        return NULL;
    }
    PyObject *names = PyList_AsTuple(paths);
    Py_DECREF(paths);
    return names;
}

PyMODINIT_FUNC PyInit__quantpipe_kernels(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    PyObject *paths = supported_paths();
    int failed = paths == NULL || PyModule_AddObjectRef(m, "PATHS", paths) != 0 ||
                 PyModule_AddStringConstant(m, "PATH", PATH_NAMES[fastest_path]) != 0 ||
                 PyModule_AddStringConstant(m, "SOURCE_SHA256", KERNELS_SOURCE_SHA256) != 0 ||
                 PyModule_AddStringConstant(m, "FLAGS", KERNELS_FLAGS) != 0;
    Py_XDECREF(paths);
    if (failed) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
