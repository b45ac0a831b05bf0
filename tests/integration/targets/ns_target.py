"""A target for the daemon's namespace test: prints its own pid (as its PID namespace sees it)
as the handshake, then keeps a known function on the CPU until stdin closes."""
import json
import os
import sys
import threading


def spin_in_namespace():
    x = 0
    while True:
        x = (x * 31 + 7) % 1000003


def main():
    threading.Thread(target=spin_in_namespace, daemon=True).start()
    sys.stdout.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    sys.stdin.read()


if __name__ == "__main__":
    main()
