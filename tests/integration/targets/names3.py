"""Target with non-ASCII function names in all three PEP 393 widths (latin-1, UCS-2, UCS-4).
Prints {"pid": ...} once parked; exits when stdin closes."""
import json
import os
import sys


def 𐌰𐌱_f():
    print(json.dumps({"pid": os.getpid()}))
    sys.stdout.flush()
    sys.stdin.read()


def 函数_λ():
    𐌰𐌱_f()


def café_ÿ():
    函数_λ()


café_ÿ()
