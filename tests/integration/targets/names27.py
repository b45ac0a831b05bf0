"""2.7 target (ASCII identifiers only there): run from a file whose path is non-ASCII UTF-8.
Prints {"pid": ...} once parked; exits when stdin closes."""
import json
import os
import sys


def deep_sleep():
    print(json.dumps({"pid": os.getpid()}))
    sys.stdout.flush()
    sys.stdin.read()


def middle():
    deep_sleep()


def outer():
    middle()


outer()
