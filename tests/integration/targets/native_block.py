"""A target for `dump --native`: the main thread blocks in a C call (time.sleep, zlib.compress of a
large buffer in a loop, or select.select) under two Python frames; or (nested) in time.sleep called
by a lambda that the C function map() calls. Prints one JSON line when
ready; exits when its stdin closes (a helper thread waits for that)."""
import json
import os
import select
import sys
import threading
import time
import zlib


def in_sleep():
    while True:
        time.sleep(100)


def in_zlib():
    data = os.urandom(1 << 16) * 64   # 4 MiB, compressible enough to keep deflate busy
    while True:
        zlib.compress(data, 9)


def in_select():
    while True:
        select.select([], [], [], 100)


def in_nested():
    # Python -> C (list, map) -> Python: two C-level eval calls, each running its own frames.
    list(map(lambda _: time.sleep(100), [1]))


def outer(fn):
    fn()


def watch_stdin():
    sys.stdin.read()
    os._exit(0)


t = threading.Thread(target=watch_stdin)
t.daemon = True
t.start()
sys.stdout.write(json.dumps({"pid": os.getpid()}) + "\n")
sys.stdout.flush()
outer({"sleep": in_sleep, "zlib": in_zlib, "select": in_select, "nested": in_nested}[sys.argv[1]])
