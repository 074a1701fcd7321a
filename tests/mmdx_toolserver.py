"""Runs repo tools for the tests, each in its own process forked from this
one after the imports every tool starts with (``import mmdynamixer`` pulls
in torch, MMEngine, MMCV, MMPretrain and MMDetection: seconds per process
on 2 cores, for each of the suite's ~100 tool runs).

Protocol, one JSON line each way: the client sends ``{tool, args, cwd,
env, out, err}``; the server answers ``{"pid": ...}`` once the child runs
and ``{"returncode": ...}`` (negative: killed by that signal, as
``subprocess`` reports it) once it has ended. Started by
``mmdx_testing.run_tool``.
"""
import json
import os
import os.path as osp
import sys

PRELOAD = ('mmdynamixer', 'mmengine.runner')


def run_as_main(tool, args, cwd, env, out_file, err_file):
    """In the child: what ``python TOOL ARGS`` does after its imports, with
    stdout and stderr (file descriptors 1 and 2, so C-level output too)
    going to the given files, and the exit status the interpreter gives."""
    import atexit
    import runpy
    import traceback
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    for fd, path in ((1, out_file), (2, err_file)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    tool = osp.join(cwd, tool)
    here = osp.dirname(osp.abspath(__file__))
    sys.path[:] = [osp.dirname(tool)] + [p for p in sys.path[1:]
                                         if p and p != here]
    sys.argv = [tool, *args]
    code = 0
    try:
        runpy.run_path(tool, run_name='__main__')
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve():
    for name in PRELOAD:
        __import__(name)
    requests, replies = sys.stdin, sys.stdout
    for line in requests:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            run_as_main(job['tool'], job['args'], job['cwd'], job['env'],
                        job['out'], job['err'])
        replies.write(json.dumps(dict(pid=pid)) + '\n')
        replies.flush()
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps(dict(
            returncode=os.waitstatus_to_exitcode(status))) + '\n')
        replies.flush()


if __name__ == '__main__':
    serve()
