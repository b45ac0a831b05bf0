/*
 * sampler.c — the sampling clock (see sampler.h). Sleeping is always absolute, so time spent
 * reading the target never shifts later ticks.
 */
#include "attach/sampler.h"

#include <sys/prctl.h>
#include <time.h>

#define NS 1000000000ULL
#define SPIN_MARGIN_NS 80000ULL     /* wake this long before a high-rate tick, then spin */
#define MAX_SLEEP_NS (100000000ULL) /* re-check the stop flag at least this often */

uint64_t sampler_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static uint64_t next_random(struct sampler *s)
{
    /* xorshift64*: cheap, good enough to de-alias ticks. */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 0x2545F4914F6CDD1DULL;
}

void sampler_init(struct sampler *s, double rate_hz, double jitter)
{
    if (rate_hz <= 0)
        rate_hz = 1;
    s->period_ns = (uint64_t)((double)NS / rate_hz);
    if (s->period_ns == 0)
        s->period_ns = 1;
    if (jitter < 0)
        jitter = 0;
    if (jitter > 0.5)
        jitter = 0.5;
    s->jitter_ns = (uint32_t)((double)s->period_ns * jitter);
    s->spin = rate_hz >= SAMPLER_SPIN_HZ;
    s->catchup_ns = s->period_ns > SAMPLER_CATCHUP_NS ? s->period_ns : SAMPLER_CATCHUP_NS;
    s->start_ns = sampler_now_ns();
    s->rng = s->start_ns | 1;
    s->tick = 0;
    s->due_ns = s->start_ns;
    s->taken = s->missed = s->overruns = 0;
    /* The default 50 µs timer slack would dominate the error of a 1 ms schedule. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
}

static void sleep_until(uint64_t t)
{
    struct timespec ts = {(time_t)(t / NS), (long)(t % NS)};
    /* EINTR (a signal) simply returns: the caller looks at its stop flag. */
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

uint64_t sampler_wait(struct sampler *s, volatile int *stop)
{
    uint64_t now = sampler_now_ns();
    /* Late by more than the catch-up window: skip the ticks that are already past, and count
     * them. Within it, the ticks are taken back to back until the schedule is met again: a
     * stall of pytrace (a flush, a page fault, being preempted) then costs no samples at high
     * rates, and each sample still carries the time it was really taken. */
    if (now > s->due_ns + s->catchup_ns) {
        uint64_t behind = (now - s->due_ns) / s->period_ns;
        s->missed += behind;
        s->tick += behind;
        s->due_ns += behind * s->period_ns;
    }
    uint64_t due = s->due_ns;
    if (s->jitter_ns)
        due += next_random(s) % s->jitter_ns;
    while (now < due) {
        if (stop && *stop)
            return 0;
        uint64_t wake = due;
        if (s->spin)
            wake = due > SPIN_MARGIN_NS ? due - SPIN_MARGIN_NS : 0;
        if (wake > now + MAX_SLEEP_NS)
            wake = now + MAX_SLEEP_NS;
        if (wake > now)
            sleep_until(wake);
        now = sampler_now_ns();
        if (s->spin && now < due && due - now <= SPIN_MARGIN_NS) {
            while ((now = sampler_now_ns()) < due)
                ;
        }
    }
    if (stop && *stop)
        return 0;
    if (now > due + s->period_ns / 2)
        s->overruns++;
    s->tick++;
    s->due_ns = s->start_ns + s->tick * s->period_ns;
    s->taken++;
    return due;
}

double sampler_achieved_hz(const struct sampler *s, uint64_t now_ns)
{
    if (now_ns <= s->start_ns || s->taken == 0)
        return 0;
    return (double)s->taken * (double)NS / (double)(now_ns - s->start_ns);
}
