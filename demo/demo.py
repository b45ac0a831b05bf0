"""pytrace's demo program: a small fake web service with a few worker threads.

Runs on CPython 3.6+. Prints one JSON line {"pid": ..., "ready": true} once its workers are
running, then serves fake requests until killed (or for --seconds). Each request parses (CPU),
queries a fake database (sleeps) and renders a template (CPU), so a trace shows CPU work, waits,
and nested calls on several threads.
"""
import json
import os
import sys
import threading
import time

SECONDS = float(sys.argv[sys.argv.index("--seconds") + 1]) if "--seconds" in sys.argv else 3600.0


def tokenize(text):
    return [word.strip(".,") for word in text.split()]


def parse_request(n):
    words = tokenize("GET /orders?id=%d HTTP/1.1 host: demo.local, user-agent: pytrace." % n)
    return {w: len(w) for w in words * 200}


def query_database(n):
    time.sleep(0.02 + (n % 3) * 0.01)
    return [{"id": i, "total": i * 3.5} for i in range(50)]


def escape_html(value):
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_template(rows):
    out = []
    for _ in range(20):
        for row in rows:
            out.append("<tr><td>%s</td><td>%s</td></tr>" % (escape_html(row["id"]),
                                                            escape_html(row["total"])))
    return "".join(out)


def handle_request(n):
    parse_request(n)
    rows = query_database(n)
    return render_template(rows)


def worker(deadline):
    n = 0
    while time.time() < deadline:
        handle_request(n)
        n += 1


def main():
    deadline = time.time() + SECONDS
    threads = [threading.Thread(target=worker, args=(deadline,), name="worker-%d" % i)
               for i in range(3)]
    for t in threads:
        t.daemon = True
        t.start()
    print(json.dumps({"pid": os.getpid(), "ready": True}))
    sys.stdout.flush()
    worker(deadline)


if __name__ == "__main__":
    main()
