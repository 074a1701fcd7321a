# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""The versions mmdynamixer supports, checked at import time.

An unsupported Python, torch, torchvision, numpy, mmcv, mmengine or
mmpretrain would fail later and obscurely (a missing op or API, a changed
registry, a config that no longer parses), so ``import mmdynamixer`` checks
them first, from their version files, before anything imports them, and
raises :class:`UnsupportedVersionError` naming the package, the installed
version, the supported range and the fix.

mmcv is accepted as each library that uses it accepts it:
classification needs only what MMPretrain accepts (:data:`MMCV_FOR`), while
MMDetection and MMSegmentation refuse mmcv >= 2.2.0. So MMDetection and
MMSegmentation, with the mmcv they need, are checked when something imports
them (a config with ``default_scope='mmdet'`` or ``'mmseg'``, or user code)
after ``import mmdynamixer``, or at once if they were imported before; an
unsupported one that MMPretrain merely tries to import is skipped, so that
classification works whatever else is installed.

The ranges are those of requirements/runtime.txt, mminstall.txt and
optional.txt and of setup.py's ``python_requires`` (a test keeps them
equal): each lower bound is the oldest release of a tested stack; the upper
bounds are the next major release, or what a library itself refuses.
"""
import contextlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import os.path as osp
import re
import sys

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from .doc_links import OWN_ENVIRONMENT

PYTHON = '3.10'  # setup.py's python_requires='>=3.10'

MMCV_FIX = ('with torch 2.1, `mim install mmcv==2.1.0` (OpenMMLab\'s '
            'prebuilt wheels); with a newer torch, compile it: '
            '`MMCV_WITH_OPS=1 pip install --no-build-isolation mmcv==2.1.0` '
            '(for torch >= 2.14 with -std=c++20 in its setup.py, as '
            f'tools/install.sh does; see {OWN_ENVIRONMENT})')

# The mmcv each library accepts (its own check in its __init__.py), from
# the oldest mmcv tested here: classification (MMPretrain 1.2) < 2.4.0,
# MMDetection 3.3 and MMSegmentation 1.2 < 2.2.0.
MMCV_FOR = {
    'mmpretrain': ('classification with MMPretrain', '2.1.0', '2.4.0'),
    'mmdet': ('detection with MMDetection', '2.1.0', '2.2.0'),
    'mmseg': ('segmentation with MMSegmentation', '2.1.0', '2.2.0'),
}
# import name: (distribution, lowest supported, first unsupported or None,
# fix)
SUPPORTED = {
    'torch': ('torch', '2.1', None,
              'install torch >= 2.1 with the torchvision built for it (for '
              'example `pip install torch==2.1.2 torchvision==0.16.2`), and '
              'an mmcv built for that torch'),
    'torchvision': ('torchvision', '0.16', None,
                    'install the torchvision built for your torch (0.16 for '
                    'torch 2.1; pip names it: `pip install torchvision` '
                    'with your torch pinned)'),
    'numpy': ('numpy', '1.24', None,
              "pip install 'numpy>=1.24' (numpy 1.x for a torch built "
              'against it, such as torch 2.1)'),
    'mmcv': ('mmcv', *MMCV_FOR['mmpretrain'][1:], MMCV_FIX),
    'mmengine': ('mmengine', '0.10.7', '1.0.0',
                 "pip install 'mmengine>=0.10.7,<1.0.0'"),
    'mmpretrain': ('mmpretrain', '1.2.0', '2.0.0',
                   "pip install 'mmpretrain>=1.2.0,<2.0.0'"),
    'mmdet': ('mmdet', '3.3.0', '4.0.0', "pip install 'mmdet>=3.3.0,<4.0.0'"),
    'mmseg': ('mmsegmentation', '1.2.2', '2.0.0',
              "pip install 'mmsegmentation>=1.2.2,<2.0.0'"),
}
REQUIRED = ('torch', 'torchvision', 'numpy', 'mmcv', 'mmengine',
            'mmpretrain')
ON_IMPORT = ('mmdet', 'mmseg')


class UnsupportedVersionError(RuntimeError):
    """A package outside the range mmdynamixer supports.

    Not an ImportError: MMEngine's registry swallows ImportErrors of a
    config's scope package and then fails with an unrelated KeyError."""


def installed_version(package: str):
    """The version of ``package`` without importing it: ``None`` if it is not
    installed, ``''`` if it is but its version cannot be read."""
    module = sys.modules.get(package)
    if module is not None:
        return str(getattr(module, '__version__', ''))
    spec = importlib.machinery.PathFinder.find_spec(package)
    for folder in (spec and spec.submodule_search_locations) or ():
        path = osp.join(folder, 'version.py')
        if osp.isfile(path):
            with open(path, encoding='utf-8') as f:
                found = re.search(r"""^__version__\s*=\s*['"]([^'"]+)""",
                                  f.read(), re.M)
            if found:
                return found.group(1)
    try:
        return importlib.metadata.version(SUPPORTED[package][0])
    except importlib.metadata.PackageNotFoundError:
        return '' if spec is not None else None


def spec_of(low, high=None) -> str:
    return f'>={low}' + (f',<{high}' if high else '')


def in_range(version: str, low: str, high=None) -> bool:
    """Whether ``version`` (a local build such as ``2.1.2+cu121`` counts as
    its release) is in ``[low, high)``; True for a version that cannot be
    read (not ours to judge)."""
    try:
        version = Version(Version(version).base_version)
    except InvalidVersion:
        return True
    return Version(low) <= version and (high is None or
                                        version < Version(high))


def check_python(version_info=sys.version_info):
    if version_info[:2] < tuple(int(p) for p in PYTHON.split('.')):
        found = '.'.join(str(p) for p in version_info[:3])
        raise UnsupportedVersionError(
            f'Python {found} is running, but mmdynamixer supports Python '
            f'>={PYTHON}. Fix: use Python {PYTHON} or newer.')


def check_version(package: str, version=None):
    """Raise :class:`UnsupportedVersionError` if ``package`` (or the given
    ``version`` of it) is missing or outside the supported range."""
    dist, low, high, fix = SUPPORTED[package]
    if version is None:
        version = installed_version(package)
    wanted = f'{dist}{spec_of(low, high)}'
    if version is None:
        raise UnsupportedVersionError(
            f'mmdynamixer needs {wanted}, and {package} is not installed. '
            f'Fix: {fix}.')
    if not in_range(version, low, high):
        raise UnsupportedVersionError(
            f'{dist} {version} is installed, but mmdynamixer supports '
            f'{wanted}. Fix: {fix}.')


def check_mmcv_for(library: str, version=None):
    """Raise :class:`UnsupportedVersionError` if the installed mmcv (or
    ``version``) is not one that ``library`` accepts, naming what each
    library needs."""
    if version is None:
        version = installed_version('mmcv')
    if version is None:
        return check_version('mmcv', version)
    use, low, high = MMCV_FOR[library]
    if in_range(version, low, high):
        return
    others = '; '.join(f'{u} accepts mmcv{spec_of(lo, hi)}'
                       for name, (u, lo, hi) in MMCV_FOR.items()
                       if name != library)
    raise UnsupportedVersionError(
        f'mmcv {version} is installed, but {use} needs '
        f'mmcv{spec_of(low, high)} ({others}). Fix: {MMCV_FIX}.')


def check_torchvision_matches_torch(torch_version=None, requires=None):
    """A torchvision wheel names the torch it was built for
    (``Requires-Dist: torch==X``); another torch fails obscurely inside
    torchvision (``operator torchvision::nms does not exist``)."""
    if torch_version is None:
        torch_version = installed_version('torch')
    if requires is None:
        try:
            requires = importlib.metadata.requires('torchvision') or []
        except importlib.metadata.PackageNotFoundError:
            return
    for line in requires:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.name != 'torch' or req.marker is not None or not torch_version:
            continue
        try:
            release = Version(Version(torch_version).base_version)
        except InvalidVersion:
            return
        if not req.specifier.contains(release, prereleases=True):
            raise UnsupportedVersionError(
                f'torchvision {installed_version("torchvision")} was built '
                f'for torch{req.specifier}, but torch {torch_version} is '
                'installed. Fix: install the torchvision built for your '
                'torch (pip picks it with your torch pinned: `pip install '
                f'torch=={release} torchvision`).')


class _CheckOnImport(importlib.abc.MetaPathFinder):
    """Checks the version of an optional package, and the mmcv it needs,
    when it is first imported; it finds nothing itself, so the import goes
    on as usual.

    While ``quiet`` (mmdynamixer's own imports: MMPretrain tries
    ``import mmdet`` inside ``try/except ImportError``), an unsupported
    package fails that import as an ImportError, so it is skipped there and
    stays unimported until something really uses it."""
    quiet = False

    def find_spec(self, name, path=None, target=None):
        # a missing package fails as usual (ModuleNotFoundError), so that
        # optional imports of it elsewhere keep working
        version = installed_version(name) if path is None and \
            name in ON_IMPORT else None
        if version is not None:
            try:
                check_version(name, version)
                check_mmcv_for(name)
            except UnsupportedVersionError as err:
                if self.quiet:
                    raise ImportError(str(err)) from None
                raise
        return None


@contextlib.contextmanager
def optional_imports_skip_unsupported():
    """Within: an unsupported mmdet/mmseg imported optionally is skipped."""
    _CheckOnImport.quiet = True
    try:
        yield
    finally:
        _CheckOnImport.quiet = False


def check_versions():
    """Check Python and the required packages now, and the optional ones
    on import."""
    check_python()
    for package in REQUIRED:
        if package == 'mmcv':
            check_mmcv_for('mmpretrain')
        else:
            check_version(package)
        if package == 'torchvision':
            check_torchvision_matches_torch()
    for package in ON_IMPORT:
        if package in sys.modules:
            check_version(package)
            check_mmcv_for(package)
    if not any(isinstance(f, _CheckOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _CheckOnImport())
