// The floating-point peak of this machine, measured: independent float32 multiply-adds held
// in registers, on THREADS threads at once, for each instruction set the CPU has.
//
//   clang -O2 -pthread bench/peak.c -o peak && ./peak 2
//
// Prints one line per instruction set: "avx512 GFLOPS", "avx2 GFLOPS" (256-bit FMA) and
// "sse GFLOPS" (128-bit multiply then add, what a baseline x86-64 build executes), counting a
// multiply-add as two operations: the sum over the threads of each one's operations per second
// of its own CPU time, so a busy host (which takes cores away) does not lower it. bench/
// compare.py compiles and runs it to give each build's figures as a share of its own peak.
// x86-64 only.

#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define STEPS 20000000L

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// 12 or 16 independent accumulators cover the multiply-add latency (4–5 cycles) on two
// ports; each result is returned so the loop is not removed.
__attribute__((target("avx512f"))) static float run_avx512(long steps) {
    __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-7f);
    __m512 x[16];
    for (int i = 0; i < 16; i++) x[i] = _mm512_set1_ps((float)i);
    for (long s = 0; s < steps; s++)
        for (int i = 0; i < 16; i++) x[i] = _mm512_fmadd_ps(x[i], a, b);
    __m512 sum = x[0];
    for (int i = 1; i < 16; i++) sum = _mm512_add_ps(sum, x[i]);
    return _mm512_reduce_add_ps(sum);
}

__attribute__((target("avx2,fma"))) static float run_avx2(long steps) {
    __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-7f);
    __m256 x[12];
    for (int i = 0; i < 12; i++) x[i] = _mm256_set1_ps((float)i);
    for (long s = 0; s < steps; s++)
        for (int i = 0; i < 12; i++) x[i] = _mm256_fmadd_ps(x[i], a, b);
    __m256 sum = x[0];
    for (int i = 1; i < 12; i++) sum = _mm256_add_ps(sum, x[i]);
    float out[8];
    _mm256_storeu_ps(out, sum);
    return out[0] + out[7];
}

static float run_sse(long steps) {
    __m128 a = _mm_set1_ps(0.999f), b = _mm_set1_ps(1e-7f);
    __m128 x[12];
    for (int i = 0; i < 12; i++) x[i] = _mm_set1_ps((float)i);
    for (long s = 0; s < steps; s++)
        for (int i = 0; i < 12; i++) x[i] = _mm_add_ps(_mm_mul_ps(x[i], a), b);
    __m128 sum = x[0];
    for (int i = 1; i < 12; i++) sum = _mm_add_ps(sum, x[i]);
    float out[4];
    _mm_storeu_ps(out, sum);
    return out[0] + out[3];
}

struct job { int isa; long steps; float result; double seconds; };

static void *work(void *argument) {
    struct job *job = argument;
    double start = cpu_seconds();
    job->result = job->isa == 2 ? run_avx512(job->steps) : job->isa == 1 ? run_avx2(job->steps) : run_sse(job->steps);
    job->seconds = cpu_seconds() - start;
    return NULL;
}

// FLOPs per step of each loop: lanes × accumulators × 2.
static const double flops[3] = {4 * 12 * 2, 8 * 12 * 2, 16 * 16 * 2};
static const char *names[3] = {"sse", "avx2", "avx512"};

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (threads < 1 || threads > 256) threads = 1;
    __builtin_cpu_init();
    int has[3] = {1, __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"),
                  __builtin_cpu_supports("avx512f")};
    for (int isa = 2; isa >= 0; isa--) {
        if (!has[isa]) continue;
        double best = 0;
        for (int trial = 0; trial < 3; trial++) {  // the best of three: a busy host only slows it
            pthread_t tid[256];
            struct job jobs[256];
            long steps = isa == 2 ? STEPS / 2 : STEPS;
            for (int t = 0; t < threads; t++) {
                jobs[t] = (struct job){isa, steps, 0, 0};
                pthread_create(&tid[t], NULL, work, &jobs[t]);
            }
            double rate = 0;
            for (int t = 0; t < threads; t++) {
                pthread_join(tid[t], NULL);
                rate += flops[isa] * steps / jobs[t].seconds / 1e9;
            }
            if (rate > best) best = rate;
            if (jobs[0].result == 12345.0f) printf("#");
        }
        printf("%s %.1f\n", names[isa], best);
    }
    return 0;
}
