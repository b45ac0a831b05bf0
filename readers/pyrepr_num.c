/*
 * pyrepr_num.c — numbers as Python prints them, as pure functions over values already read from
 * the target (pyrepr.h): a double as repr() gives it (the shortest digits that read back, placed
 * the way CPython places them), and a magnitude of 30-bit digits in decimal (repeated division by
 * 10^9, exact at any size within PYREPR_INT_DIGITS).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include "readers/pyrepr.h"

void pyrepr_float(double v, char *out, size_t cap)
{
    if (isnan(v)) {
        snprintf(out, cap, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(out, cap, v < 0 ? "-inf" : "inf");
        return;
    }
    /* The shortest digits that read back as v, placed the way Python's repr places them. */
    char e[40];
    int prec = 1;
    for (; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, v);
        if (strtod(e, NULL) == v)
            break;
    }
    char digits[24];
    size_t nd = 0;
    const char *s = e;
    bool neg = *s == '-';
    if (neg)
        s++;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9' && nd < sizeof digits - 1)
            digits[nd++] = *s;
    digits[nd] = '\0';
    int exp = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        digits[--nd] = '\0';
    char buf[64];
    size_t n = 0;
    if (neg)
        buf[n++] = '-';
    if (exp >= 16 || exp < -4) {
        buf[n++] = digits[0];
        if (nd > 1) {
            buf[n++] = '.';
            memcpy(buf + n, digits + 1, nd - 1);
            n += nd - 1;
        }
        snprintf(buf + n, sizeof buf - n, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    } else if (exp < 0) {
        n += (size_t)snprintf(buf + n, sizeof buf - n, "0.");
        for (int i = -1; i > exp; i--)
            buf[n++] = '0';
        memcpy(buf + n, digits, nd);
        buf[n + nd] = '\0';
    } else {
        for (int i = 0; i <= exp || i < (int)nd; i++) {
            if (i == exp + 1)
                buf[n++] = '.';
            buf[n++] = i < (int)nd ? digits[i] : '0';
        }
        if ((int)nd <= exp + 1) {
            buf[n++] = '.';
            buf[n++] = '0';
        }
        buf[n] = '\0';
    }
    snprintf(out, cap, "%s", buf);
}

size_t pyrepr_digits(const uint32_t *digits, size_t n, int negative, char *out, size_t cap)
{
    uint32_t work[PYREPR_INT_DIGITS];
    uint32_t chunks[PYREPR_INT_DIGITS * 2];   /* base 10^9, least significant first */
    size_t nc = 0;
    if (n > PYREPR_INT_DIGITS)
        n = PYREPR_INT_DIGITS;
    memcpy(work, digits, n * sizeof *work);
    while (n > 0 && work[n - 1] == 0)
        n--;
    while (n > 0) {
        uint64_t rem = 0;
        for (size_t i = n; i-- > 0;) {
            uint64_t cur = (rem << 30) | (work[i] & 0x3fffffffu);
            work[i] = (uint32_t)(cur / 1000000000u);
            rem = cur % 1000000000u;
        }
        chunks[nc++] = (uint32_t)rem;
        while (n > 0 && work[n - 1] == 0)
            n--;
    }
    int len = 0;
    if (nc == 0)
        return (size_t)snprintf(out, cap, "0");
    len = snprintf(out, cap, "%s%u", negative ? "-" : "", chunks[nc - 1]);
    for (size_t i = nc - 1; i-- > 0 && len > 0 && (size_t)len < cap;)
        len += snprintf(out + len, cap - (size_t)len, "%09u", chunks[i]);
    return len < 0 ? 0 : (size_t)len < cap ? (size_t)len : cap - 1;
}
