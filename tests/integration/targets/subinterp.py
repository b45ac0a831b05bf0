"""A thread that calls into a subinterpreter and runs there (tests/integration/test_record.py).

Thread "nested" runs enter() -> run_string() -> the subinterpreter's <module> -> in_sub() x4,
which writes one byte to a pipe and works. The main thread then prints the handshake line and
waits for stdin to close. CPython 3.8-3.12: _xxsubinterpreters; 3.13+: _interpreters.
"""
import json
import os
import sys
import threading

try:
    import _interpreters as interpreters
except ImportError:
    import _xxsubinterpreters as interpreters

# Up to 3.11 the interpreters share one GIL, but a thread spinning in a subinterpreter never
# sees another interpreter's request to drop it: the loop sleeps a little now and then.
CODE = """
import os, time
def in_sub(n):
    if n:
        return in_sub(n - 1)
    os.write(%d, b"x")
    while True:
        sum(range(20000))
        time.sleep(0.0002)
in_sub(3)
"""


def enter(fd):
    interpreters.run_string(interpreters.create(), CODE % fd)


def main():
    r, w = os.pipe()
    threading.Thread(target=enter, args=(w,), name="nested", daemon=True).start()
    os.read(r, 1)
    print(json.dumps({"pid": os.getpid(), "ready": True}))
    sys.stdout.flush()
    sys.stdin.read()
    os._exit(0)


main()
