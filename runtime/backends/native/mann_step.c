/* One step of an edgemeta MANN learner with a flat encoder, as one C function.
 *
 * The same function as export/mann_graph.py (MANNStepGraph.forward) and edgemeta/models/mann.py
 * (lrua_access), written out by hand so that a step is one call instead of ~60 graph nodes.
 * backend.py beside this file compiles it on first use and calls `mann_step` through ctypes;
 * the weights come from learner.onnx, rearranged at load (see backend.py).
 *
 * Per stream b (row of the batch), with F = S*S pixels, C classes, Hd controller units, N slots
 * of width W, H heads, row = W + C (each row holds a key and its label), R = H*row:
 *   x      = [image (F), prev_label (C), h (Hd), read (R)]                       K = F + C + Hd + R
 *   gates  = x @ w_lstm + b_lstm, columns (i, f, o | g)                          G = 4*Hd
 *   c' = f*c + i*tanh(g), h' = o*tanh(c')
 *   p      = [h', image] @ w_heads + b_heads, per head (key W, write gate, read sharpness)
 *   memory half: lrua_access (least-used slots by TopK of usage + tie-break, write, cosine read)
 *   out    = [h', read'] @ w_out + b_out -> logits (C) [, novelty = sigmoid(out[C])]
 *
 * Speed, and why:
 * - the two large products are axpys over the rows of input-major weights, cut into panels of 64
 *   output columns ([panel][row][64], one cache line per row in int8): eight vector accumulators
 *   stay in registers while the rows stream through, and rows whose input is exactly 0 are
 *   skipped (most pixels of an Omniglot drawing are paper, the label is one-hot);
 * - weights are int8 with a float scale per output column, multiplied by the activations quantized
 *   per step to 14-bit integers with exact int32 sums (see int8 product below), scales applied once
 *   per column at the end; or plain float32 weights and float32 accumulation;
 * - exp/sigmoid/tanh of the gates and softmax are computed eight at a time with a polynomial exp
 *   (Cephes' expf: relative error ~1e-7), as a scalar libm call per element costs more than the
 *   products they follow.
 * No allocation: the caller passes a scratch buffer of mann_scratch_bytes() bytes.
 */
#include <math.h>
#include <stddef.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif
#if defined(__ARM_NEON) && !defined(MANN_PLAIN_INT8)
#include <arm_neon.h>
#define MANN_NEON_INT8 1
#endif
#include <stdint.h>
#include <string.h>

#define MANN_ABI 2 /* bumped whenever struct mann_args changes; checked by the loader */
#define PANEL 64
#define EPS 1e-6f       /* edgemeta.models.mann.EPS */
#define TIE_BREAK 1e-5f /* edgemeta.models.mann.TIE_BREAK */

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef int8_t v8b __attribute__((vector_size(8)));
typedef int16_t v8s __attribute__((vector_size(16)));

struct mann_args {
    /* dims */
    int32_t batch, F, C, Hd, N, W, H, row, has_novelty, int8;
    int32_t K, Gp, Pp, Op; /* rows of w_lstm; padded columns of w_lstm, w_heads, w_out */
    float gamma;
    /* weights (see backend.py for the layouts) */
    const void *w_lstm;    /* [Gp/64][K][64] float32 or int8 */
    const float *s_lstm;   /* [Gp] column scales (int8) */
    const float *b_lstm;   /* [Gp] */
    const void *w_heads;   /* [Pp/64][Hd+F][64] float32 or int8, rows [h', image] */
    const float *s_heads;  /* [Pp] */
    const float *b_heads;  /* [Pp] */
    const float *w_out;    /* [Hd+R][Op] float32 */
    const float *b_out;    /* [Op] */
    /* inputs, batch-major */
    const float *image, *prev_label;
    const float *h, *c, *memory, *read, *read_weights, *usage, *keys;
    /* outputs */
    float *h_out, *c_out, *memory_out, *read_out, *read_weights_out, *usage_out, *keys_out;
    float *logits, *novelty;
    void *scratch;
};

int mann_abi(void) { return MANN_ABI; }
/* The int8 product's kernel as compiled: what `edgemeta doctor` and `edgemeta bench` report. */
const char *mann_kernel(void) {
#if defined(__AVX2__)
    return "avx2";
#elif defined(MANN_NEON_INT8)
    return "neon";
#else
    return "plain C";
#endif
}
int mann_args_size(void) { return (int)sizeof(struct mann_args); }

/* Dimensions: compiled in when the loader passes -DMANN_F=... (it does: constant loop bounds let the
 * compiler unroll the small loops over heads and row chunks and keep their sums in registers), read
 * from the arguments otherwise. */
#ifdef MANN_F
#define DIM(x) MANN_##x
#else
#define DIM(x) (a->x)
#endif

/* ---- vector helpers ------------------------------------------------------------------------- */
static inline v8f ld8(const float *p) { v8f v; memcpy(&v, p, sizeof v); return v; }
static inline void st8(float *p, v8f v) { memcpy(p, &v, sizeof v); }
/* 8 int8 -> 8 floats. gcc 12 scalarises __builtin_convertvector from 8-byte vectors, so x86 gets
 * the two instructions by name (sign-extend, convert); other targets the portable form. */
#if defined(__AVX2__)
static inline v8f ldq8(const int8_t *p) {
    __m128i b = _mm_loadl_epi64((const __m128i *)p);
    return (v8f)_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
}
#else
static inline v8f ldq8(const int8_t *p) { v8b b; memcpy(&b, p, sizeof b); return __builtin_convertvector(b, v8f); }
#endif
static inline v8f splat(float x) { return (v8f){x, x, x, x, x, x, x, x}; }
static inline v8f vsel(v8i m, v8f a, v8f b) { return (v8f)((m & (v8i)a) | (~m & (v8i)b)); }
static inline v8f vmin(v8f a, v8f b) { return vsel(a < b, a, b); }
static inline v8f vmax(v8f a, v8f b) { return vsel(a > b, a, b); }

/* exp(x), Cephes expf: x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial, times 2^n. */
static inline v8f vexp(v8f x) {
    x = vmin(vmax(x, splat(-87.0f)), splat(88.0f));
    v8f t = x * splat(1.44269504088896341f) + splat(128.5f); /* > 0: truncation is floor */
    v8i n = __builtin_convertvector(t, v8i) - 128;
    v8f fn = __builtin_convertvector(n, v8f);
    v8f r = x - fn * splat(0.693359375f) + fn * splat(2.12194440e-4f);
    v8f p = splat(1.9875691500e-4f);
    p = p * r + splat(1.3981999507e-3f);
    p = p * r + splat(8.3334519073e-3f);
    p = p * r + splat(4.1665795894e-2f);
    p = p * r + splat(1.6666665459e-1f);
    p = p * r + splat(5.0000001201e-1f);
    p = p * r * r + r + splat(1.0f);
    return p * (v8f)((n + 127) << 23);
}
static inline v8f vsigmoid(v8f x) { return splat(1.0f) / (splat(1.0f) + vexp(-x)); }
static inline v8f vtanh(v8f x) { return splat(1.0f) - splat(2.0f) / (vexp(x + x) + splat(1.0f)); }

static inline float sexp(float x) { return vexp(splat(x))[0]; }

/* Apply f to n floats in place (n padded to 8 by the caller's buffers). */
#define VMAP(fn, p, n) do { for (int _i = 0; _i < (n); _i += 8) st8((p) + _i, fn(ld8((p) + _i))); } while (0)

/* ---- the two large products ----------------------------------------------------------------- */
/* y[0:np*64] = sum_t val[t] * w[idx[t]][:] with w in panels [np][rows][64]. */
static void panels_f32(const float *w, int rows, int np, const int32_t *idx, const float *val, int n, float *y) {
    for (int p = 0; p < np; p++) {
        const float *wp = w + (size_t)p * rows * PANEL;
        v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
        for (int t = 0; t < n; t++) {
            const float *r = wp + (size_t)idx[t] * PANEL;
            v8f x = splat(val[t]);
            a0 += x * ld8(r);      a1 += x * ld8(r + 8);  a2 += x * ld8(r + 16); a3 += x * ld8(r + 24);
            a4 += x * ld8(r + 32); a5 += x * ld8(r + 40); a6 += x * ld8(r + 48); a7 += x * ld8(r + 56);
        }
        float *o = y + p * PANEL;
        st8(o, a0); st8(o + 8, a1); st8(o + 16, a2); st8(o + 24, a3);
        st8(o + 32, a4); st8(o + 40, a5); st8(o + 48, a6); st8(o + 56, a7);
    }
}

/* The int8 product: activations quantized per step to 14-bit integers q (one scale for the whole
 * input vector), weights int8, exact int32 sums: rows go in pairs, so one multiply-add instruction
 * (vpmaddwd) does two rows for eight columns. Weights in panels [np][pairs][64][2] (two rows of a
 * column side by side); val[t] packs the pair (q[2p] low 16 bits, q[2p+1] high). |sum| <= rows *
 * 16383 * 127 < 2^31 for rows < 1032; the loader checks. */
#define QMAX 16383.0f
static void panels_q(const int8_t *w, int pairs, int np, const int32_t *idx, const int32_t *val, int n, int32_t *y) {
    for (int p = 0; p < np; p++) {
        const int8_t *wp = w + (size_t)p * pairs * 2 * PANEL;
#if defined(__AVX2__)
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
#define QSTEP(acc, off) acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(r + off))), x))
        for (int t = 0; t < n; t++) {
            const int8_t *r = wp + (size_t)idx[t] * 2 * PANEL;
            __m256i x = _mm256_set1_epi32(val[t]);
            QSTEP(a0, 0); QSTEP(a1, 16); QSTEP(a2, 32); QSTEP(a3, 48);
            QSTEP(a4, 64); QSTEP(a5, 80); QSTEP(a6, 96); QSTEP(a7, 112);
        }
#undef QSTEP
        __m256i *o = (__m256i *)(y + p * PANEL);
        _mm256_storeu_si256(o, a0); _mm256_storeu_si256(o + 1, a1); _mm256_storeu_si256(o + 2, a2);
        _mm256_storeu_si256(o + 3, a3); _mm256_storeu_si256(o + 4, a4); _mm256_storeu_si256(o + 5, a5);
        _mm256_storeu_si256(o + 6, a6); _mm256_storeu_si256(o + 7, a7);
#elif defined(MANN_NEON_INT8)
        /* NEON (ARMv8-A, every aarch64 core): vld2 splits a pair of rows into its two rows of 16 columns,
         * widened to int16 and multiplied by the row's q with widening multiply-adds into int32. The
         * sums are the same integers as the plain-C loop's. (sdot multiplies 8-bit by 8-bit; q has 14
         * bits, so it does not apply to this product as laid out.) */
        int32x4_t acc[16];
        for (int k = 0; k < 16; k++) acc[k] = vdupq_n_s32(0);
        for (int t = 0; t < n; t++) {
            const int8_t *r = wp + (size_t)idx[t] * 2 * PANEL;
            int16_t lo = (int16_t)(val[t] & 0xFFFF), hi = (int16_t)((uint32_t)val[t] >> 16);
            for (int c = 0; c < 4; c++) { /* columns 16c .. 16c+15 */
                int8x16x2_t w2 = vld2q_s8(r + 32 * c);
                int16x8_t l0 = vmovl_s8(vget_low_s8(w2.val[0])), l1 = vmovl_high_s8(w2.val[0]);
                int16x8_t h0 = vmovl_s8(vget_low_s8(w2.val[1])), h1 = vmovl_high_s8(w2.val[1]);
                int32x4_t *q = acc + 4 * c;
                q[0] = vmlal_n_s16(vmlal_n_s16(q[0], vget_low_s16(l0), lo), vget_low_s16(h0), hi);
                q[1] = vmlal_high_n_s16(vmlal_high_n_s16(q[1], l0, lo), h0, hi);
                q[2] = vmlal_n_s16(vmlal_n_s16(q[2], vget_low_s16(l1), lo), vget_low_s16(h1), hi);
                q[3] = vmlal_high_n_s16(vmlal_high_n_s16(q[3], l1, lo), h1, hi);
            }
        }
        for (int k = 0; k < 16; k++) vst1q_s32(y + p * PANEL + 4 * k, acc[k]);
#else
        int32_t acc[PANEL] = {0};
        for (int t = 0; t < n; t++) {
            const int8_t *r = wp + (size_t)idx[t] * 2 * PANEL;
            int32_t lo = (int16_t)(val[t] & 0xFFFF), hi = (int16_t)((uint32_t)val[t] >> 16);
            for (int j = 0; j < PANEL; j++) acc[j] += r[2 * j] * lo + r[2 * j + 1] * hi;
        }
        memcpy(y + p * PANEL, acc, sizeof acc);
#endif
    }
}

/* Append the nonzero entries of x to (idx, val) from position t; branch-free (pixels are
 * unpredictable). idx and val have room for one entry past the last nonzero. */
static inline int gather(const float *x, int n, int offset, int32_t *idx, float *val, int t) {
    for (int k = 0; k < n; k++) {
        idx[t] = offset + k;
        val[t] = x[k];
        t += x[k] != 0.0f;
    }
    return t;
}

static inline size_t up8(size_t n) { return (n + 7) & ~(size_t)7; }

/* Scratch layout (every piece a multiple of 8 floats, so vector loops may run over the ends).
 * Memory is worked on in a copy whose rows are padded to rowp = up8(row) columns of zeros. */
struct scratch {
    int32_t *idx; float *val;      /* [K] nonzero inputs of a product */
    float *x; int32_t *qval, *yi;  /* the product's input [K + 1]; packed int pairs; int32 sums [max(Gp, Pp)] */
    int16_t *q16;                  /* the input quantized [K + 1] */
    float *gates, *p;              /* [Gp], [Pp] */
    float *lu, *ww, *rw, *ut;      /* [H][N] least-used, write weights, read weights; [N] usage + tie-break */
    float *m2, *content, *keys;    /* [N], [H][rowp], [H][Wp] */
    float *mem, *read;             /* [N][rowp], [H][rowp] */
    float *wmask;                  /* [Wp]: 1 for the key columns, 0 beyond */
    float *rmask;                  /* [rowp]: all bits set for the row's columns, 0 beyond */
    float *out;                    /* [Op] */
};

static size_t layout(const struct mann_args *a, struct scratch *s, char *base) {
    size_t k = up8((a->K > a->Hd + a->F ? a->K : a->Hd + a->F) + 2), hn = up8((size_t)a->H * a->N), n = up8(a->N), rowp = up8(a->row), wp = up8(a->W);
    size_t gp = a->Gp > a->Pp ? a->Gp : a->Pp;
    size_t sizes[] = {k, k, k, k, gp, k, a->Gp, a->Pp, hn, hn, hn, n, n, a->H * rowp, a->H * wp, a->N * rowp, a->H * rowp, wp, rowp, a->Op};
    float **slots[] = {(float **)&s->idx, &s->val, &s->x, (float **)&s->qval, (float **)&s->yi, (float **)&s->q16, &s->gates, &s->p, &s->lu, &s->ww, &s->rw, &s->ut, &s->m2,
                       &s->content, &s->keys, &s->mem, &s->read, &s->wmask, &s->rmask, &s->out};
    size_t off = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (base) *slots[i] = (float *)(base + off);
        off += 4 * sizes[i];
    }
    return off;
}

long mann_scratch_bytes(const struct mann_args *a) { struct scratch s; return (long)layout(a, &s, NULL); }

/* y = b + x @ w for x = s->x[0:rows] (zero from rows up to the next multiple of 8 past it).
 * int8: y = b + (scale_w * scale_x) * (q(x) @ w_int8), see panels_q; fp32: the float product. */
static void affine(const struct mann_args *a, const struct scratch *s, const void *w, const float *sc, const float *b,
                   int rows, int cols, float *y) {
    const float *x = s->x;
    const int np = cols / PANEL;
    if (!a->int8) {
        int n = gather(x, rows, 0, s->idx, s->val, 0);
        panels_f32((const float *)w, rows, np, s->idx, s->val, n, y);
        for (int j = 0; j < cols; j += 8) st8(y + j, ld8(b + j) + ld8(y + j));
        return;
    }
    v8f peak = {0};
    for (int k = 0; k < rows; k += 8) {
        v8f v = ld8(x + k);
        peak = vmax(peak, vmax(v, -v));
    }
    float pk = 0.0f;
    for (int q = 0; q < 8; q++) pk = peak[q] > pk ? peak[q] : pk;
    if (pk == 0.0f) {
        memcpy(y, b, sizeof(float) * cols);
        return;
    }
    const float inv = QMAX / pk, xs = pk / QMAX;
    const int pairs = (rows + 1) / 2;
    /* x -> int16 (rounded to nearest), then read back as int32 pairs: little-endian puts x[2p] in
     * the low half, as vpmaddwd wants */
    for (int k = 0; k < rows; k += 8) {
        v8f t = ld8(x + k) * splat(inv);
        t += vsel(t < splat(0.0f), splat(-0.5f), splat(0.5f));
        v8s q = __builtin_convertvector(__builtin_convertvector(t, v8i), v8s);
        memcpy(s->q16 + k, &q, sizeof q);
    }
    int n = 0;
    for (int p = 0; p < pairs; p++) {
        int32_t v;
        memcpy(&v, s->q16 + 2 * p, sizeof v);
        s->idx[n] = p;
        s->qval[n] = v;
        n += v != 0;
    }
    panels_q((const int8_t *)w, pairs, np, s->idx, s->qval, n, s->yi);
    for (int j = 0; j < cols; j += 8) {
        v8i yi;
        memcpy(&yi, s->yi + j, sizeof yi);
        st8(y + j, ld8(b + j) + ld8(sc + j) * splat(xs) * __builtin_convertvector(yi, v8f));
    }
}

static inline float hsum(v8f v) {
    float s = 0.0f;
    for (int q = 0; q < 8; q++) s += v[q];
    return s;
}

/* The four horizontal sums of a, b, c, d. */
static inline void hsum4(v8f a, v8f b, v8f c, v8f d, float *out) {
#if defined(__AVX__)
    __m256 t = _mm256_hadd_ps(_mm256_hadd_ps((__m256)a, (__m256)b), _mm256_hadd_ps((__m256)c, (__m256)d));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)));
#else
    out[0] = hsum(a); out[1] = hsum(b); out[2] = hsum(c); out[3] = hsum(d);
#endif
}

/* ---- one step for one stream ---------------------------------------------------------------- */
static void step_row(const struct mann_args *a, const struct scratch *s, int b) {
    const int F = DIM(F), C = DIM(C), Hd = DIM(Hd), N = DIM(N), W = DIM(W), H = DIM(H), row = DIM(row), R = H * row;
    const int rowp = (int)up8(row), Wp = (int)up8(W);
    const float *image = a->image + (size_t)b * F, *prev = a->prev_label + (size_t)b * C;
    const float *h = a->h + (size_t)b * Hd, *c = a->c + (size_t)b * Hd;
    const float *mem = a->memory + (size_t)b * N * row, *read = a->read + (size_t)b * R;
    const float *rw_prev = a->read_weights + (size_t)b * H * N, *usage = a->usage + (size_t)b * N;
    float *h_out = a->h_out + (size_t)b * Hd, *c_out = a->c_out + (size_t)b * Hd;
    float *mem_out = a->memory_out + (size_t)b * N * row, *read_out = a->read_out + (size_t)b * R;
    float *rw_out = a->read_weights_out + (size_t)b * H * N, *usage_out = a->usage_out + (size_t)b * N;

    /* controller: gates = [image, prev_label, h, read] @ w_lstm + b_lstm, columns (i, f, o | g) */
    float *x = s->x, *g = s->gates;
    memcpy(x, image, sizeof(float) * F);
    memcpy(x + F, prev, sizeof(float) * C);
    memcpy(x + F + C, h, sizeof(float) * Hd);
    memcpy(x + F + C + Hd, read, sizeof(float) * R);
    for (int k = F + C + Hd + R; k < (int)up8(F + C + Hd + R + 1); k++) x[k] = 0.0f;
    affine(a, s, a->w_lstm, a->s_lstm, a->b_lstm, F + C + Hd + R, a->Gp, g);
    VMAP(vsigmoid, g, 3 * Hd); /* Hd is a multiple of 8 (checked) */
    for (int j = 0; j < Hd; j += 8) {
        v8f cn = ld8(g + Hd + j) * ld8(c + j) + ld8(g + j) * vtanh(ld8(g + 3 * Hd + j));
        st8(c_out + j, cn);
        st8(h_out + j, ld8(g + 2 * Hd + j) * vtanh(cn));
    }

    /* heads: p = [h', image] @ w_heads + b_heads; per head (key W, write gate, read sharpness) */
    memcpy(x, h_out, sizeof(float) * Hd);
    memcpy(x + Hd, image, sizeof(float) * F);
    for (int k = Hd + F; k < (int)up8(Hd + F + 1); k++) x[k] = 0.0f;
    affine(a, s, a->w_heads, a->s_heads, a->b_heads, Hd + F, a->Pp, s->p);

    /* ---- memory: edgemeta.models.mann.lrua_access ---- */
    float gate[64], beta[64], smallest[64];
    float *keys = s->keys; /* [H][Wp], zero padded (tanh(0) = 0) */
    for (int k = 0; k < H; k++) {
        const float *pk = s->p + k * (W + 2);
        for (int j = 0; j < Wp; j++) keys[k * Wp + j] = j < W ? pk[j] : 0.0f;
        gate[k] = vsigmoid(splat(pk[W]))[0];
        float z = pk[W + 1];
        beta[k] = 1.0f + (z > 20.0f ? z : log1pf(sexp(z))); /* torch's softplus, threshold 20 */
    }
    VMAP(vtanh, keys, H * Wp);

    /* least used: the H smallest of usage + tie-break, ascending (TopK), each as an equality mask */
    float *ut = s->ut;
    int found = 0;
    for (int i = 0; i < N; i++) {
        float u = usage[i] + (float)i * TIE_BREAK;
        ut[i] = u;
        if (found < H || u < smallest[H - 1]) {
            int q = found < H ? found++ : H - 1;
            while (q > 0 && smallest[q - 1] > u) { smallest[q] = smallest[q - 1]; q--; }
            smallest[q] = u;
        }
    }
    float *lu = s->lu, *ww = s->ww;
    for (int k = 0; k < H; k++) {
        for (int i = 0; i < N; i++) {
            float l = ut[i] == smallest[k] ? 1.0f : 0.0f;
            lu[k * N + i] = l;
            ww[k * N + i] = l + gate[k] * (rw_prev[k * N + i] - l); /* sigmoid(a) w_r + (1 - sigmoid(a)) lu */
        }
    }
    /* what head k writes: [k_{t-1}; prev_label], zero padded */
    float *content = s->content;
    memset(content, 0, sizeof(float) * H * rowp);
    for (int k = 0; k < H; k++) {
        memcpy(content + k * rowp, a->keys + (size_t)b * H * W + k * W, sizeof(float) * W);
        memcpy(content + k * rowp + W, prev, sizeof(float) * C);
    }
    /* write (the least-used slot is zeroed, then M += write_w^T content) into the padded copy */
    float *mp = s->mem, *m2 = s->m2, *rw = s->rw;
    for (int i = 0; i < N; i++) {
        const float *mi = mem + (size_t)i * row;
        float *mo = mp + (size_t)i * rowp;
        v8f keep = splat(1.0f - lu[i]);
        for (int j = 0; j < rowp; j += 8) {
            /* whole-vector loads (a row's last chunk reads into the next row, or into the slack
             * after the buffer: backend.py allocates state with 64 spare bytes); the
             * lanes past the row are masked to zero bitwise, so whatever was there drops out */
            v8f v = (v8f)((v8i)ld8(mi + j) & *(const v8i *)(s->rmask + j)) * keep;
            for (int k = 0; k < H; k++) v += splat(ww[k * N + i]) * ld8(content + k * rowp + j);
            st8(mo + j, v);
        }
        memcpy(mem_out + (size_t)i * row, mo, sizeof(float) * row);
        v8f sq = {0};
        for (int j = 0; j < W; j += 8) {
            v8f m = ld8(mo + j);
            sq += m * m * ld8(s->wmask + j); /* key columns only */
        }
        m2[i] = hsum(sq) + EPS;
    }
    /* dot products of the new keys with every slot's key part, four heads at a time (keys are zero
     * beyond W, so the label columns drop out) */
    for (int k0 = 0; k0 < H; k0 += 4) {
        const float *k0p = keys + k0 * Wp;
        const float *k1p = k0 + 1 < H ? k0p + Wp : k0p, *k2p = k0 + 2 < H ? k0p + 2 * Wp : k0p;
        const float *k3p = k0 + 3 < H ? k0p + 3 * Wp : k0p;
        for (int i = 0; i < N; i++) {
            const float *mo = mp + (size_t)i * rowp;
            v8f d0 = {0}, d1 = {0}, d2 = {0}, d3 = {0};
            for (int j = 0; j < Wp; j += 8) {
                v8f m = ld8(mo + j);
                d0 += ld8(k0p + j) * m; d1 += ld8(k1p + j) * m; d2 += ld8(k2p + j) * m; d3 += ld8(k3p + j) * m;
            }
            float d[4];
            hsum4(d0, d1, d2, d3, d);
            for (int q = 0; q < 4 && k0 + q < H; q++) rw[(k0 + q) * N + i] = d[q];
        }
    }
    /* read weights: softmax over slots of beta * dot / sqrt((|k|^2 + eps)(|m|^2 + eps)) */
    for (int k = 0; k < H; k++) {
        const float *kk = keys + k * Wp;
        v8f sq = {0};
        for (int j = 0; j < Wp; j += 8) sq += ld8(kk + j) * ld8(kk + j);
        float k2 = hsum(sq) + EPS, *r = rw + k * N, bk = beta[k];
        for (int i = 0; i < N; i++) r[i] = bk * r[i] / sqrtf(k2 * m2[i]); /* vectorised: no errno */
        int i = 0;
        v8f vm = splat(-INFINITY);
        for (; i + 8 <= N; i += 8) vm = vmax(vm, ld8(r + i));
        float mx = -INFINITY;
        for (int q = 0; q < 8; q++) mx = vm[q] > mx ? vm[q] : mx;
        for (; i < N; i++) mx = r[i] > mx ? r[i] : mx;
        v8f acc = {0};
        for (i = 0; i + 8 <= N; i += 8) { v8f e = vexp(ld8(r + i) - splat(mx)); st8(r + i, e); acc += e; }
        float sum = hsum(acc);
        for (; i < N; i++) { r[i] = sexp(r[i] - mx); sum += r[i]; }
        float inv = 1.0f / sum;
        for (i = 0; i < N; i++) rw_out[k * N + i] = r[i] * inv;
    }
    /* read = read_w @ memory, four heads at a time */
    for (int k0 = 0; k0 < H; k0 += 4) {
        int kn = H - k0 < 4 ? H - k0 : 4;
        const float *r0 = rw_out + k0 * N, *r1 = r0 + (kn > 1) * N, *r2 = r0 + (kn > 2) * 2 * N, *r3 = r0 + (kn > 3) * 3 * N;
        for (int j = 0; j < rowp; j += 8) {
            v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            for (int i = 0; i < N; i++) {
                v8f m = ld8(mp + (size_t)i * rowp + j);
                a0 += splat(r0[i]) * m; a1 += splat(r1[i]) * m; a2 += splat(r2[i]) * m; a3 += splat(r3[i]) * m;
            }
            v8f acc[4] = {a0, a1, a2, a3};
            for (int q = 0; q < kn; q++) st8(s->read + (k0 + q) * rowp + j, acc[q]);
        }
    }
    for (int k = 0; k < H; k++) memcpy(read_out + k * row, s->read + k * rowp, sizeof(float) * row);
    /* usage = gamma * usage + sum over heads of (read_w + write_w) */
    for (int i = 0; i < N; i++) {
        float sum = 0.0f;
        for (int k = 0; k < H; k++) sum += rw_out[k * N + i] + ww[k * N + i];
        usage_out[i] = a->gamma * usage[i] + sum;
    }
    float *keys_out = a->keys_out + (size_t)b * H * W;
    for (int k = 0; k < H; k++) memcpy(keys_out + k * W, keys + k * Wp, sizeof(float) * W);

    /* out = [h', read'] @ w_out + b_out, w_out [Hd + R][Op], Op a multiple of 8 */
    const int Op = DIM(Op);
    float *out = s->out;
    for (int j0 = 0; j0 < Op; j0 += 8) {
        v8f a0 = ld8(a->b_out + j0), a1 = {0}, a2 = {0}, a3 = {0};
        const float *wr = a->w_out + j0;
        int k = 0;
        for (; k + 4 <= Hd; k += 4) {
            a0 += splat(h_out[k]) * ld8(wr + (size_t)k * Op);
            a1 += splat(h_out[k + 1]) * ld8(wr + (size_t)(k + 1) * Op);
            a2 += splat(h_out[k + 2]) * ld8(wr + (size_t)(k + 2) * Op);
            a3 += splat(h_out[k + 3]) * ld8(wr + (size_t)(k + 3) * Op);
        }
        for (; k < Hd; k++) a0 += splat(h_out[k]) * ld8(wr + (size_t)k * Op);
        wr += (size_t)Hd * Op;
        for (k = 0; k + 4 <= R; k += 4) {
            a0 += splat(read_out[k]) * ld8(wr + (size_t)k * Op);
            a1 += splat(read_out[k + 1]) * ld8(wr + (size_t)(k + 1) * Op);
            a2 += splat(read_out[k + 2]) * ld8(wr + (size_t)(k + 2) * Op);
            a3 += splat(read_out[k + 3]) * ld8(wr + (size_t)(k + 3) * Op);
        }
        for (; k < R; k++) a0 += splat(read_out[k]) * ld8(wr + (size_t)k * Op);
        st8(out + j0, (a0 + a1) + (a2 + a3));
    }
    memcpy(a->logits + (size_t)b * C, out, sizeof(float) * C);
    if (a->has_novelty) a->novelty[b] = vsigmoid(splat(out[C]))[0];
}

/* One step for every stream. Returns 0, or -1 for dims this kernel does not handle. */
int mann_step(const struct mann_args *a) {
    if (a->Gp % PANEL || a->Pp % PANEL || a->Op % 8 || a->Hd % 8 || a->H < 1 || a->H > 64) return -1;
#ifdef MANN_F
    if (a->F != MANN_F || a->C != MANN_C || a->Hd != MANN_Hd || a->N != MANN_N || a->W != MANN_W || a->H != MANN_H ||
        a->row != MANN_row || a->Op != MANN_Op)
        return -2; /* built for other dimensions */
#endif
    struct scratch s;
    layout(a, &s, (char *)a->scratch);
    for (int j = 0; j < (int)up8(a->W); j++) s.wmask[j] = j < a->W ? 1.0f : 0.0f;
    for (int j = 0; j < (int)up8(a->row); j++) ((int32_t *)s.rmask)[j] = j < a->row ? -1 : 0;
    for (int b = 0; b < a->batch; b++) step_row(a, &s, b);
    return 0;
}
