"""A target for filter rules (tests/integration/test_filters.py): user code calling the standard
library (json.dumps, pure-Python frames dumps/encode/iterencode) which calls back into user code
(the default= hook), and a helper the rules exclude. Prints {"pid": ..., "ready": true}, then works
until --seconds pass (or, with --watch-stdin, stdin closes)."""
import json
import os
import select
import sys
import time


class Opaque(object):
    pass


def spin_callback(o):
    s = 0
    for i in range(300):
        s += i
    return s


def encode_hook(o):
    return spin_callback(o)


def noisy_helper():
    s = 0
    for i in range(3000):
        s += i * i
    return s


def work(data):
    json.dumps(data, default=encode_hook)
    noisy_helper()


def main():
    seconds = float(sys.argv[sys.argv.index("--seconds") + 1]) if "--seconds" in sys.argv else 10
    password = "hunter2"  # a secret-looking local, for the default redaction
    data = [Opaque() for _ in range(40)]
    print(json.dumps({"pid": os.getpid(), "ready": True}))
    sys.stdout.flush()
    end = time.time() + seconds
    watch = "--watch-stdin" in sys.argv
    while time.time() < end and password:
        work(data)
        if watch and select.select([sys.stdin], [], [], 0)[0] and not sys.stdin.read(1):
            break


main()
