"""Shared helpers of the test suite (tests/ is put on sys.path by conftest)."""
import os
import os.path as osp
import subprocess
import sys


REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = osp.join(osp.dirname(REPO), 'shared')
REFERENCE = osp.join(SHARED, 'reference')

# Small DynaMixer used by the fast tests: 8x8 then 4x4 tokens at 32 px.
TINY_ARCH = dict(embed_dims=[16, 32], depths=[1, 2], num_segments=[4, 8],
                 reduced_dims=[2, 3])
TINY = dict(type='DynaMixer', arch=TINY_ARCH, img_size=32, patch_size=4)


def run_tool(*args, cwd=REPO, timeout=900, env=None, check=True):
    """Run a repo tool (``tools/...py`` or a shell script) as a subprocess."""
    cmd = [sys.executable, *args] if args[0].endswith('.py') else ['bash', *args]
    full_env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{" ".join(cmd)} failed ({proc.returncode}):\n'
                             f'{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}')
    return proc
