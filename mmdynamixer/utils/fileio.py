# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Files that a crash cannot leave half written."""
import os
import os.path as osp

INCOMPLETE = '.incomplete'


def atomic_write(path: str, data: bytes):
    """Write ``data`` to ``path`` so that ``path`` is never partly written:
    into a temporary file beside it, synced, then renamed over it."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(path)}.{os.getpid()}{INCOMPLETE}')
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    fd = os.open(folder, os.O_RDONLY)  # make the rename itself durable
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
