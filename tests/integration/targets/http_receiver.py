"""A small HTTP receiver for the daemon's sink tests (tests/integration/test_daemon_sinks.py).

    python3 http_receiver.py DIR [--status CODE] [--hang]

Listens on 127.0.0.1 at a free port and prints {"ready": true, "port": P}. Each POST's body is
saved as DIR/NNNN.bin and one JSON line {"path", "query", "headers", "file", "bytes"} is printed
before the answer: CODE (default 200), or none at all with --hang (the connection is held open).
Exits when stdin closes.
"""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DIR = sys.argv[1]
STATUS = int(sys.argv[sys.argv.index("--status") + 1]) if "--status" in sys.argv else 200
HANG = "--hang" in sys.argv
LOCK = threading.Lock()
COUNT = [0]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        with LOCK:
            COUNT[0] += 1
            name = os.path.join(DIR, "%04d.bin" % COUNT[0])
            with open(name, "wb") as f:
                f.write(body)
            path, _, query = self.path.partition("?")
            sys.stdout.write(json.dumps({"path": path, "query": query, "file": name,
                                         "bytes": len(body),
                                         "headers": {k.lower(): v for k, v in self.headers.items()}})
                             + "\n")
            sys.stdout.flush()
        if HANG:
            time.sleep(3600)
            return
        self.send_response(STATUS)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdout.write(json.dumps({"ready": True, "port": server.server_address[1]}) + "\n")
    sys.stdout.flush()
    sys.stdin.read()


if __name__ == "__main__":
    main()
