# -*- coding: utf-8 -*-
"""Target for `dump --locals` and `--locals` recording (2.7 and 3.x): inspect_me() holds one
argument or local of every rendered type, plus secret-looking names. Prints {"pid", "widget"} once
parked inside it (every local bound); exits when stdin closes. With --loop it instead calls
inspect_me() again and again (new spans for a recording; --pause: each call sleeps 20 ms) until
stdin closes."""
import json
import os
import sys
import threading
import time


class Widget(object):
    pass


def inspect_me(none_arg, flag, count, big, neg, ratio, text, blob, items, pair, mapping, members,
               widget, password, api_key=u"k-123", *rest, **options):
    local_total = count + 1
    deep = [[1, [2, [3]]]]
    long_list = list(range(10))
    long_text = u"x" * 100
    captured = u"cell"

    def inner():
        return captured, count   # count: an argument that lives in a cell

    if options.get("pause"):
        time.sleep(options["pause"])
    if options.get("park"):
        print(json.dumps({"pid": os.getpid(), "widget": "0x%x" % id(widget)}))
        sys.stdout.flush()
        sys.stdin.read()
    return inner


def call(i, park, pause=0):
    return inspect_me(None, True, 42, 1234567890123456789012345678901234567890, -17, 2.5,
                      u"h\u00e9llo w\u00f6rld", b"\x00ab\xff", [1, 2, 3], (u"a", 1), {u"k": 1},
                      set([7]), Widget(), u"hunter2", park=park, pause=pause, seq=i)


def main():
    if "--loop" in sys.argv:
        done = []

        def wait():
            sys.stdin.read()
            done.append(1)

        t = threading.Thread(target=wait)
        t.daemon = True
        t.start()
        print(json.dumps({"pid": os.getpid()}))
        sys.stdout.flush()
        i = 0
        pause = 0.02 if "--pause" in sys.argv else 0
        while not done:
            call(i, False, pause)
            i += 1
    else:
        call(0, True)


main()
