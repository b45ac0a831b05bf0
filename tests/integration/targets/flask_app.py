"""A small Flask app for the daemon's worker-pool test: gunicorn serves `app`; every request
runs handle_request, which spends a few milliseconds on the CPU so the sampler sees it."""
import os
import time

from flask import Flask

app = Flask(__name__)


def render_rows(n):
    return "".join("<tr><td>%d</td><td>%d</td></tr>" % (i, i * i) for i in range(n))


@app.route("/")
def handle_request():
    deadline = time.perf_counter() + 0.012
    out = ""
    while time.perf_counter() < deadline:
        out = render_rows(200)
    return "ok %d %d\n" % (len(out), os.getpid())
