"""generators.py's loop in four threads at once (3.11+). One thread runs at a time (the GIL); a
sampling round reads the first thread's stack in its one prefetch syscall and the others' after
it, so their generators' frames on the heap must be read again after their own frame pointers,
or a frame freed and reused in between joins another call's stack. Runs until killed."""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generators  # noqa: E402


def run(n=4):
    threads = [threading.Thread(target=generators.main, args=(3600.0,), name="gen-%d" % i)
               for i in range(n)]
    for t in threads:
        t.daemon = True
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    run()
