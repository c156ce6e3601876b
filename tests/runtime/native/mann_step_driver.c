/* Runs runtime/backends/native/mann_step.c over whole episodes from files, for the cross-architecture
 * test (tests/runtime/test_native_arm.py): built for aarch64 and run under qemu-aarch64, where Python
 * cannot load the library.
 *
 *   mann_step_driver ARGS STEPS OUT
 * ARGS: int32[14] dims (batch F C Hd N W H row has_novelty int8 K Gp Pp Op), float32 gamma, then for
 *       w_lstm s_lstm b_lstm w_heads s_heads b_heads w_out b_out: int64 byte count and the bytes.
 * STEPS: int32 T, then per step image [batch*F] and prev_label [batch*C] float32.
 * OUT: per step logits [batch*C], novelty [batch] (when has_novelty), then every state output.
 * The state starts at zero and every step is committed (outputs become the next inputs). */
#include "mann_step.c"

#include <stdio.h>
#include <stdlib.h>

static void *read_block(FILE *f) {
    int64_t n;
    if (fread(&n, 8, 1, f) != 1) exit(3);
    void *p = aligned_alloc(64, (size_t)((n + 64 + 63) / 64 * 64));
    memset(p, 0, (size_t)((n + 64 + 63) / 64 * 64));
    if (fread(p, 1, (size_t)n, f) != (size_t)n) exit(3);
    return p;
}

static float *zeros(size_t n) {
    size_t bytes = (n * sizeof(float) + 64 + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes);
    memset(p, 0, bytes);
    return p;
}

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    FILE *fa = fopen(argv[1], "rb"), *fs = fopen(argv[2], "rb"), *fo = fopen(argv[3], "wb");
    if (!fa || !fs || !fo) return 2;
    struct mann_args a;
    memset(&a, 0, sizeof a);
    int32_t d[14];
    if (fread(d, 4, 14, fa) != 14 || fread(&a.gamma, 4, 1, fa) != 1) return 3;
    a.batch = d[0]; a.F = d[1]; a.C = d[2]; a.Hd = d[3]; a.N = d[4]; a.W = d[5]; a.H = d[6]; a.row = d[7];
    a.has_novelty = d[8]; a.int8 = d[9]; a.K = d[10]; a.Gp = d[11]; a.Pp = d[12]; a.Op = d[13];
    a.w_lstm = read_block(fa); a.s_lstm = read_block(fa); a.b_lstm = read_block(fa);
    a.w_heads = read_block(fa); a.s_heads = read_block(fa); a.b_heads = read_block(fa);
    a.w_out = read_block(fa); a.b_out = read_block(fa);
    const size_t B = (size_t)a.batch, R = (size_t)a.H * a.row;
    const size_t sizes[7] = {a.Hd, a.Hd, (size_t)a.N * a.row, R, (size_t)a.H * a.N, a.N, (size_t)a.H * a.W};
    float *in[7], *out[7];
    for (int k = 0; k < 7; k++) { in[k] = zeros(B * sizes[k]); out[k] = zeros(B * sizes[k]); }
    float *image = zeros(B * a.F), *prev = zeros(B * a.C), *logits = zeros(B * a.C), *novelty = zeros(B);
    a.image = image; a.prev_label = prev; a.logits = logits; a.novelty = a.has_novelty ? novelty : NULL;
    void *scratch = NULL;
    int32_t T;
    if (fread(&T, 4, 1, fs) != 1) return 3;
    for (int t = 0; t < T; t++) {
        if (fread(image, 4, B * a.F, fs) != B * a.F || fread(prev, 4, B * a.C, fs) != B * a.C) return 3;
        a.h = in[0]; a.c = in[1]; a.memory = in[2]; a.read = in[3]; a.read_weights = in[4]; a.usage = in[5]; a.keys = in[6];
        a.h_out = out[0]; a.c_out = out[1]; a.memory_out = out[2]; a.read_out = out[3]; a.read_weights_out = out[4];
        a.usage_out = out[5]; a.keys_out = out[6];
        if (!scratch) {
            long n = mann_scratch_bytes(&a);
            scratch = aligned_alloc(64, (size_t)(n + 63) / 64 * 64);
            memset(scratch, 0, (size_t)(n + 63) / 64 * 64);
        }
        a.scratch = scratch;
        if (mann_step(&a) != 0) return 4;
        fwrite(logits, 4, B * a.C, fo);
        if (a.has_novelty) fwrite(novelty, 4, B, fo);
        for (int k = 0; k < 7; k++) fwrite(out[k], 4, B * sizes[k], fo);
        for (int k = 0; k < 7; k++) { float *x = in[k]; in[k] = out[k]; out[k] = x; }
    }
    printf("%s\n", mann_kernel());
    fclose(fo);
    return 0;
}
