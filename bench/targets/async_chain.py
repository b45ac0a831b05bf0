"""A bench target (bench/ab.py --script): two asyncio tasks, each awaiting a chain of 10
coroutines whose innermost computes for a while, then yields to the loop. From 3.11 every one of
those coroutines' frames lives in its coroutine object on the heap, outside the thread's data
stack, so each is read on its own: what a coroutine-heavy service costs a sampler. Runs until
killed."""
import asyncio

DEPTH = 10


async def level(n):
    if n == 0:
        s = 0
        for i in range(3000):
            s += i * i
        await asyncio.sleep(0)
        return s
    return await level(n - 1)


async def worker():
    while True:
        await level(DEPTH)


async def main():
    await asyncio.gather(*[worker() for _ in range(2)])


if __name__ == "__main__":
    asyncio.run(main())
