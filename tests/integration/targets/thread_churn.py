"""Starts and joins short threads one after another, from one function, for argv[1] seconds
(default 1.5). Up to 3.11 each new thread state is in the thread list, with its creator's ids,
before its thread runs; a code object freed at start-up (site.py's module body) often has its
address reused by churn()'s, and a frame by churn's frame. A recording must keep churn() as one
call of the main thread, named as itself, and give no thread that never was."""
import sys
import threading
import time


def work():
    pass


def churn(seconds):
    end = time.time() + seconds
    while time.time() < end:
        t = threading.Thread(target=work)
        t.start()
        t.join()


if __name__ == "__main__":
    churn(float(sys.argv[1]) if len(sys.argv) > 1 else 1.5)
