"""Helpers shared by the `pytrace daemon` tests: start the daemon with its log in a file, wait for
log lines (the daemon's own handshake: it logs every process it traces and every file it
finishes), stop it with a signal and time the exit, and read its files back."""
import glob
import json
import os
import re
import signal
import subprocess
import time

from conftest import PYTRACE, run_pytrace


class Daemon(object):
    def __init__(self, tmp, *args):
        self.dir = str(tmp / "traces")
        self.log_path = str(tmp / "daemon.log")
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen([PYTRACE, "daemon", "--dir", self.dir] + [str(a) for a in args],
                                     stdout=subprocess.DEVNULL, stderr=self.log_file)
        self.pid = self.proc.pid
        self.wait_for(r"^info \S+ pytrace daemon \d+:")

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_for(self, pattern, timeout=15, count=1):
        """Waits until `count` log lines match pattern; returns the matches."""
        rx = re.compile(pattern, re.M)
        deadline = time.time() + timeout
        while True:
            found = rx.findall(self.log())
            if len(found) >= count:
                return found
            if self.proc.poll() is not None:
                raise AssertionError("daemon exited (%d) before %r:\n%s" % (
                    self.proc.returncode, pattern, self.log()))
            if time.time() > deadline:
                raise AssertionError("no %r in the daemon's log within %ss:\n%s" % (
                    pattern, timeout, self.log()))
            time.sleep(0.05)

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))

    def send(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends sig; returns (exit code, seconds until exit)."""
        t0 = time.time()
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        took = time.time() - t0
        self.log_file.close()
        return rc, took

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.log_file.closed:
            self.log_file.close()

    def files(self):
        return sorted(glob.glob(os.path.join(self.dir, "**", "*.pytrace"), recursive=True))


def info(path):
    r = run_pytrace("info", path, "--json")
    assert r.returncode == 0, "info %s failed: %s" % (path, r.stderr.decode())
    return json.loads(r.stdout.decode())


def collapsed(path):
    r = run_pytrace("export", path, "-f", "collapsed", "-o", "-")
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


NAME_RX = re.compile(r"^(?P<comm>.+)-ns(?P<nspid>\d+)-pid(?P<pid>\d+)-(?P<recid>[0-9a-f]{16})-"
                     r"(?P<seq>\d{4})\.pytrace$")


def parse_name(path):
    m = NAME_RX.match(os.path.basename(path))
    assert m, "unexpected trace name %s" % path
    return m.groupdict()
