/*
 * peak.c: how many single-precision FMA flops per second this machine can do, measured now.
 *
 * The convolution benchmark reports speed as a fraction of this number. It is measured in the
 * same run as the kernels because the clock of shared and virtual machines drifts (turbo, power
 * limits, neighbours), so a number from a data sheet or from yesterday would mislead.
 *
 * Two measurements, repeated over several trials:
 *   throughput  every thread keeps NACC independent vector accumulators busy with
 *               acc = acc * m + a; with enough independent chains the FMA units never wait for
 *               a result, so flops / second is the machine's FMA peak for that thread count.
 *   clock       one thread runs a single dependent chain of FMAs, each waiting for the previous
 *               one; at FMA_LATENCY cycles per FMA this gives the core clock while it runs vector
 *               FMA code (an estimate: it is only as right as FMA_LATENCY for this CPU).
 *
 * The vector width is chosen at compile time from what -march enables: AVX-512 (16 floats),
 * AVX2+FMA (8 floats), else 4-float GCC vectors (whose a*b+c is fused only if the target has FMA).
 *
 * Build:  gcc -O2 -march=native -fopenmp peak.c -o peak
 * Run:    ./peak THREADS [TRIALS] [MILLISECONDS_PER_TRIAL]
 * Prints one JSON object on one line (all trials, so the caller chooses the statistic).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__AVX512F__)
#include <immintrin.h>
typedef __m512 vec_t;
#define ISA "avx512f"
#define LANES 16
#define VSPLAT(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define VADD(a, b) _mm512_add_ps((a), (b))
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
typedef __m256 vec_t;
#define ISA "avx2+fma"
#define LANES 8
#define VSPLAT(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define VADD(a, b) _mm256_add_ps((a), (b))
#else
typedef float vec_t __attribute__((vector_size(16)));
#define ISA "generic-4"
#define LANES 4
#define VSPLAT(x) ((vec_t){(x), (x), (x), (x)})
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VADD(a, b) ((a) + (b))
#endif

/* Independent accumulator chains per thread: latency 4-5 cycles times up to 2 FMA ports needs
 * at least 10 in flight; 12 fits in the 16 registers of AVX2 with room for the two constants. */
#ifndef NACC
#define NACC 12
#endif
#ifndef FMA_LATENCY
#define FMA_LATENCY 4
#endif
#define CHAIN_UNROLL 8
#define MAX_TRIALS 101

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float horizontal_sum(vec_t v)
{
    float lanes[LANES];
    __builtin_memcpy(lanes, &v, sizeof lanes);
    float s = 0.0f;
    for (int i = 0; i < LANES; ++i)
        s += lanes[i];
    return s;
}

/* NACC independent chains for `rounds` rounds: rounds * NACC * LANES FMAs. The multiplier is
 * below one and the addend positive, so every chain converges to a normal number (no overflow,
 * no denormals that would slow the units down). Returning the sum keeps the work observable. */
__attribute__((noinline)) static float throughput_loop(long rounds, float seed)
{
    const vec_t m = VSPLAT(0.75f), a = VSPLAT(0.25f);
    vec_t acc[NACC];
    for (int i = 0; i < NACC; ++i)
        acc[i] = VSPLAT(seed + (float)i);
    for (long r = 0; r < rounds; ++r) {
#pragma GCC unroll 32
        for (int i = 0; i < NACC; ++i)
            acc[i] = VFMA(acc[i], m, a);
    }
    vec_t total = acc[0];
    for (int i = 1; i < NACC; ++i)
        total = VADD(total, acc[i]);
    return horizontal_sum(total);
}

/* One dependent chain: rounds * CHAIN_UNROLL FMAs, each one FMA latency after the previous. */
__attribute__((noinline)) static float latency_loop(long rounds, float seed)
{
    const vec_t m = VSPLAT(0.75f), a = VSPLAT(0.25f);
    vec_t x = VSPLAT(seed);
    for (long r = 0; r < rounds; ++r) {
#pragma GCC unroll 8
        for (int i = 0; i < CHAIN_UNROLL; ++i)
            x = VFMA(x, m, a);
    }
    return horizontal_sum(x);
}

/* Wall time of `threads` threads each running throughput_loop(rounds). */
static double timed_parallel(int threads, long rounds, volatile float *sink)
{
    float local = 0.0f;
    double start = seconds_now();
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(+ : local)
    local += throughput_loop(rounds, (float)omp_get_thread_num());
#else
    (void)threads;
    local = throughput_loop(rounds, 0.0f);
#endif
    double elapsed = seconds_now() - start;
    *sink += local;
    return elapsed;
}

/* Rounds that take about `target_s` on one thread (doubling from a small start). */
static long calibrate_rounds(double target_s, volatile float *sink)
{
    long rounds = 1000;
    for (;;) {
        double t0 = seconds_now();
        *sink += throughput_loop(rounds, 1.0f);
        double dt = seconds_now() - t0;
        if (dt >= target_s / 8 || rounds > (1L << 40))
            return (long)((double)rounds * target_s / (dt > 0 ? dt : 1e-9)) + 1;
        rounds *= 2;
    }
}

static void print_list(const char *key, const double *values, int n, int last)
{
    printf("\"%s\": [", key);
    for (int i = 0; i < n; ++i)
        printf("%s%.4f", i ? ", " : "", values[i]);
    printf("]%s", last ? "" : ", ");
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    int trials = argc > 2 ? atoi(argv[2]) : 9;
    double trial_ms = argc > 3 ? atof(argv[3]) : 50.0;
    if (threads < 1 || trials < 1 || trials > MAX_TRIALS || !(trial_ms > 0)) {
        fprintf(stderr, "usage: %s THREADS [TRIALS 1..%d] [MILLISECONDS_PER_TRIAL > 0]\n", argv[0],
                MAX_TRIALS);
        return 2;
    }
#ifdef _OPENMP
    int openmp = 1;
#else
    int openmp = 0;
    threads = 1; /* a serial build can only measure one thread */
#endif
    volatile float sink = 0.0f;
    long rounds = calibrate_rounds(trial_ms * 1e-3, &sink);
    long chain_rounds = rounds * NACC / CHAIN_UNROLL / 4; /* about a quarter of a trial */
    if (chain_rounds < 1)
        chain_rounds = 1;
    timed_parallel(threads, rounds / 4 + 1, &sink); /* start the thread pool, wake the cores */

    double gflops[MAX_TRIALS], ghz[MAX_TRIALS];
    const double flops_per_call = 2.0 * LANES * NACC * (double)rounds * threads;
    for (int t = 0; t < trials; ++t) {
        double c0 = seconds_now();
        sink += latency_loop(chain_rounds, 0.5f);
        double chain_s = seconds_now() - c0;
        ghz[t] = (double)chain_rounds * CHAIN_UNROLL * FMA_LATENCY / chain_s * 1e-9;
        gflops[t] = flops_per_call / timed_parallel(threads, rounds, &sink) * 1e-9;
    }
    printf("{\"isa\": \"%s\", \"lanes\": %d, \"accumulators\": %d, \"fma_latency\": %d, "
           "\"openmp\": %d, \"threads\": %d, \"trials\": %d, \"trial_ms\": %.1f, ",
           ISA, LANES, NACC, FMA_LATENCY, openmp, threads, trials, trial_ms);
    print_list("gflops", gflops, trials, 0);
    print_list("clock_ghz", ghz, trials, 0);
    printf("\"checksum\": %g}\n", (double)sink);
    return 0;
}
