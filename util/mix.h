/*
 * mix.h — a 64-bit finaliser (splitmix64's): every input bit flips about half the output bits.
 * For hash tables and set signatures, not for anything an adversary chooses the input of.
 */
#ifndef PT_MIX_H
#define PT_MIX_H

#include <stdint.h>

static inline uint64_t pt_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

#endif
