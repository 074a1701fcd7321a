"""Imported by a distributed test's config (``custom_imports``): as the
interpreter exits, each rank prints the names of the threads that Python did
not start (gloo's, OpenMP's), read from /proc. A rank that closed its process
group has none left; one that did not still runs gloo's threads while Python
shuts down."""
import atexit
import os
import threading


def native_threads():
    python = {t.native_id for t in threading.enumerate()}
    return sorted(
        open(f'/proc/self/task/{tid}/comm').read().strip()
        for tid in os.listdir('/proc/self/task') if int(tid) not in python)


@atexit.register
def report():
    print(f'native threads at exit: {native_threads()}', flush=True)
