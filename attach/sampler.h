/*
 * sampler.h — when to take the next sample.
 *
 * An absolute-time schedule on CLOCK_MONOTONIC: tick k is due at start + k * period (+ optional
 * jitter, so sampling cannot alias with a periodic workload). Ordinary rates sleep with
 * clock_nanosleep(TIMER_ABSTIME) after lowering the timer slack to 1 ns; rates of 20 kHz and more
 * spin on the clock for the last stretch, because a sleep's wake-up latency (~50 µs) is longer than
 * their period. When sampling falls behind by more than one period the missed ticks are skipped
 * and counted (never bunched), so achieved rate, overruns and misses are honest numbers.
 */
#ifndef PT_SAMPLER_H
#define PT_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

struct sampler {
    uint64_t period_ns;
    uint64_t start_ns;
    uint64_t tick;            /* index of the next tick */
    uint64_t due_ns;          /* when the next tick is due */
    uint32_t jitter_ns;       /* max random offset added to each tick, 0 = none */
    bool spin;                /* rate >= SAMPLER_SPIN_HZ */
    uint64_t rng;
    /* statistics */
    uint64_t taken;           /* ticks returned */
    uint64_t missed;          /* ticks skipped because we were late by > 1 period */
    uint64_t overruns;        /* ticks returned late (by more than half a period) */
};

#define SAMPLER_SPIN_HZ 20000.0

uint64_t sampler_now_ns(void);

/* Sets up a schedule at rate_hz starting now; jitter is a fraction of the period (0..0.5). */
void sampler_init(struct sampler *s, double rate_hz, double jitter);

/*
 * Waits until the next tick is due and returns its due time (the nominal sample time). Returns
 * early with 0 if *stop becomes true while sleeping (checked at least every 100 ms) — pass the
 * flag your signal handler sets.
 */
uint64_t sampler_wait(struct sampler *s, volatile int *stop);

/* Achieved rate between the first tick and now. */
double sampler_achieved_hz(const struct sampler *s, uint64_t now_ns);

#endif
