# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""The OpenMMLab versions mmdynamixer supports, checked at import time.

An unsupported mmcv, mmengine or mmpretrain would fail later and obscurely (a
missing op, a changed registry, a config that no longer parses), so
``import mmdynamixer`` checks them first, from their version files, before
anything imports them, and raises :class:`UnsupportedVersionError` naming the
installed version, the supported range and the fix, as MMDetection does for
mmcv. MMDetection and MMSegmentation are checked when something imports them
(a config with ``default_scope='mmdet'`` or ``'mmseg'``, or user code) after
``import mmdynamixer``, or at once if they were imported before; an
unsupported one that MMPretrain merely tries to import is skipped, so that
classification works whatever else is installed.

The ranges are those of requirements/mminstall.txt and optional.txt (a test
keeps them equal): from the oldest release the test suite passed on to the
next major release, or to the release the stack refuses (mmdet and mmseg
refuse mmcv >= 2.2.0).
"""
import contextlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import os.path as osp
import re
import sys

from packaging.version import InvalidVersion, Version

# import name: (distribution, lowest supported, first unsupported, fix)
SUPPORTED = {
    'mmcv': ('mmcv', '2.1.0', '2.2.0',
             "compile mmcv 2.1.0 against your torch: `MMCV_WITH_OPS=1 pip "
             "install --no-build-isolation mmcv==2.1.0` (for torch >= 2.14 "
             "with -std=c++20 in its setup.py, as tools/install.sh does; see "
             "the README, \"Use in your own environment\")"),
    'mmengine': ('mmengine', '0.10.7', '1.0.0',
                 "pip install 'mmengine>=0.10.7,<1.0.0'"),
    'mmpretrain': ('mmpretrain', '1.2.0', '2.0.0',
                   "pip install 'mmpretrain>=1.2.0,<2.0.0'"),
    'mmdet': ('mmdet', '3.3.0', '4.0.0', "pip install 'mmdet>=3.3.0,<4.0.0'"),
    'mmseg': ('mmsegmentation', '1.2.2', '2.0.0',
              "pip install 'mmsegmentation>=1.2.2,<2.0.0'"),
}
REQUIRED = ('mmcv', 'mmengine', 'mmpretrain')  # in the order they import
ON_IMPORT = ('mmdet', 'mmseg')


class UnsupportedVersionError(RuntimeError):
    """An OpenMMLab package outside the range mmdynamixer supports.

    Not an ImportError: MMEngine's registry swallows ImportErrors of a
    config's scope package and then fails with an unrelated KeyError."""


def installed_version(package: str):
    """The version of ``package`` without importing it: ``None`` if it is not
    installed, ``''`` if it is but its version cannot be read."""
    module = sys.modules.get(package)
    if module is not None:
        return getattr(module, '__version__', '')
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


def check_version(package: str, version=None):
    """Raise :class:`UnsupportedVersionError` if ``package`` (or the given
    ``version`` of it) is missing or outside the supported range."""
    dist, low, high, fix = SUPPORTED[package]
    if version is None:
        version = installed_version(package)
    wanted = f'{dist}>={low},<{high}'
    if version is None:
        raise UnsupportedVersionError(
            f'mmdynamixer needs {wanted}, and {package} is not installed. '
            f'Fix: {fix}.')
    try:
        supported = Version(low) <= Version(version) < Version(high)
    except InvalidVersion:  # '' (unreadable) or a local scheme: not ours to judge
        return
    if not supported:
        raise UnsupportedVersionError(
            f'{dist} {version} is installed, but mmdynamixer supports '
            f'{wanted}. Fix: {fix}.')


class _CheckOnImport(importlib.abc.MetaPathFinder):
    """Checks the version of an optional package when it is first imported;
    it finds nothing itself, so the import goes on as usual.

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
    """Check the required packages now and the optional ones on import."""
    for package in REQUIRED:
        check_version(package)
    for package in ON_IMPORT:
        if package in sys.modules:
            check_version(package)
    if not any(isinstance(f, _CheckOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _CheckOnImport())
