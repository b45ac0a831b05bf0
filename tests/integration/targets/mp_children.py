"""multiprocessing target: waits for "go" on stdin, then starts 3 worker processes (fork) that
compute until stdin closes. Prints {"pid": ...} first and {"children": [pids]} once they run."""
import json
import multiprocessing
import os
import sys


def work(n, ready):
    ready.put(os.getpid())
    total = 0
    while True:
        for i in range(10000):
            total += i * n


def main():
    print(json.dumps({"pid": os.getpid()}))
    sys.stdout.flush()
    sys.stdin.readline()
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Queue()
    procs = [ctx.Process(target=work, args=(k, ready), name="child-%d" % k) for k in range(3)]
    for p in procs:
        p.daemon = True
        p.start()
    pids = [ready.get() for _ in procs]
    print(json.dumps({"children": pids}))
    sys.stdout.flush()
    sys.stdin.read()
    for p in procs:
        p.terminate()
        p.join()


if __name__ == "__main__":
    main()
