"""Generators resumed and suspended all the time, under a known root: a "".join(genexpr) (the
generator is resumed by C code), a generator driven by a for loop, and one delegating to another
by hand (2.7 has no `yield from`). A generator's frame is linked to its caller only while it runs,
so a reader that sees it between a yield and the next resume loses the caller stack. Runs until
killed, or for SECONDS (argv[1])."""
import sys
import time


def rows(n):
    return "".join("<td>%d</td>" % (i * i) for i in range(n))


def numbers(n):
    for i in range(n):
        yield i * 3


def relay(n):
    for x in numbers(n):
        yield x + 1


def consume(n):
    total = 0
    for x in relay(n):
        total += x
    return total


def main(seconds):
    end = time.time() + seconds
    out = 0
    while time.time() < end:
        out += len(rows(300)) + consume(300)
    return out


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 3600.0)
