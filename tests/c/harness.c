/*
 * Runs every kernel of one exported layer on inputs read from a file; writes the results.
 *
 * Built together with the exported <name>.c, configured by macros:
 *   KERNEL_HEADER  "name.h"    KERNEL_NAME  name    KERNEL_PREFIX  NAME_
 *   REAL           float or double              HAS_BIAS       0 or 1
 *
 * Usage: harness IN OUT [THREADS]
 *   IN   raw REAL values: x, w, (b,) grad_out, in that order, native byte order
 *   OUT  written the same way: out, grad_x, grad_w, (grad_b)
 * Outputs are filled with NaN before each call, so an entry a kernel fails to write shows up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include KERNEL_HEADER

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(suffix) CAT(KERNEL_NAME, suffix)
#define SIZE(what) CAT(KERNEL_PREFIX, what)

static REAL x[SIZE(INPUT_SIZE)], w[SIZE(WEIGHT_SIZE)], grad_out[SIZE(OUTPUT_SIZE)];
static REAL out[SIZE(OUTPUT_SIZE)], grad_x[SIZE(INPUT_SIZE)], grad_w[SIZE(WEIGHT_SIZE)];
#if HAS_BIAS
static REAL b[SIZE(BIAS_SIZE)], grad_b[SIZE(BIAS_SIZE)];
#endif

static void poison(REAL *a, size_t n) { memset(a, 0xff, n * sizeof *a); } /* all-ones bits: NaN */

static int read_array(FILE *f, REAL *a, size_t n, const char *what)
{
    if (fread(a, sizeof *a, n, f) != n) {
        fprintf(stderr, "harness: input file too short while reading %s\n", what);
        return 0;
    }
    return 1;
}

static int write_array(FILE *f, const REAL *a, size_t n)
{
    return fwrite(a, sizeof *a, n, f) == n;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s IN OUT [THREADS]\n", argv[0]);
        return 2;
    }
    FN(_set_num_threads)(argc > 3 ? atoi(argv[3]) : 1);
    FILE *in = fopen(argv[1], "rb");
    if (!in) {
        perror(argv[1]);
        return 2;
    }
    int ok = read_array(in, x, SIZE(INPUT_SIZE), "x") && read_array(in, w, SIZE(WEIGHT_SIZE), "w");
#if HAS_BIAS
    ok = ok && read_array(in, b, SIZE(BIAS_SIZE), "b");
#endif
    ok = ok && read_array(in, grad_out, SIZE(OUTPUT_SIZE), "grad_out");
    fclose(in);
    if (!ok)
        return 2;

    poison(out, SIZE(OUTPUT_SIZE));
    poison(grad_x, SIZE(INPUT_SIZE));
    poison(grad_w, SIZE(WEIGHT_SIZE));
#if HAS_BIAS
    poison(grad_b, SIZE(BIAS_SIZE));
    FN(_forward)(x, w, b, out);
    FN(_grad_bias)(grad_out, grad_b);
#else
    FN(_forward)(x, w, NULL, out);
#endif
    FN(_grad_input)(grad_out, w, grad_x);
    FN(_grad_weight)(x, grad_out, grad_w);

    FILE *result = fopen(argv[2], "wb");
    if (!result) {
        perror(argv[2]);
        return 2;
    }
    ok = write_array(result, out, SIZE(OUTPUT_SIZE)) && write_array(result, grad_x, SIZE(INPUT_SIZE))
         && write_array(result, grad_w, SIZE(WEIGHT_SIZE));
#if HAS_BIAS
    ok = ok && write_array(result, grad_b, SIZE(BIAS_SIZE));
#endif
    if (fclose(result) != 0 || !ok) {
        fprintf(stderr, "harness: could not write %s\n", argv[2]);
        return 2;
    }
    printf("openmp=%d\n", FN(_has_openmp)());
    return 0;
}
