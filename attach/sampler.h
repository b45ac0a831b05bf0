/*
 * sampler.h — when to take the next sample.
 *
 * An absolute-time schedule on CLOCK_MONOTONIC: tick k is due at start + k * period (+ optional
 * jitter, so sampling cannot alias with a periodic workload). Ordinary rates sleep with
 * clock_nanosleep(TIMER_ABSTIME) after lowering the timer slack to 1 ns; rates of 20 kHz and more
 * spin on the clock for the last stretch, because a sleep's wake-up latency (~50 µs) is longer than
 * their period. A sampler that fell behind takes the ticks it missed back to back, for up to
 * SAMPLER_CATCHUP_NS (or one period, if longer) of them: a short stall of pytrace costs no sample
 * (each sample carries the time it was really taken, so the spacing after a stall is uneven but
 * true). Further behind, the missed ticks are skipped and counted: achieved rate, overruns and
 * misses stay honest numbers, and a sampler slower than its period never piles up work.
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
    uint64_t catchup_ns;      /* ticks later than this are skipped, earlier ones taken */
    uint64_t rng;
    /* statistics */
    uint64_t taken;           /* ticks returned */
    uint64_t missed;          /* ticks skipped because we were late by more than catchup_ns */
    uint64_t overruns;        /* ticks returned late (by more than half a period) */
};

#define SAMPLER_SPIN_HZ 20000.0
#define SAMPLER_CATCHUP_NS 1000000ULL   /* 1 ms: 100 ticks at 100 kHz, one at 1 kHz */

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
