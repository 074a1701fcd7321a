"""The version guard: `import mmdynamixer` refuses an unsupported mmcv,
mmengine or mmpretrain, and mmdet/mmseg when they are imported, with the
installed version, the supported range and the fix; its ranges are those of
the requirements files."""
import os
import re
import subprocess
import sys

import pytest
from packaging.specifiers import SpecifierSet

from mmdynamixer import version_guard
from mmdx_testing import REPO, requirements_file, run_tool


def test_ranges_are_those_of_the_requirements_files():
    files = {r.name: r for name in ('runtime.txt', 'mminstall.txt',
                                    'optional.txt')
             for r in requirements_file(name)}
    for package, (dist, low, high, _) in version_guard.SUPPORTED.items():
        assert files[dist].specifier == SpecifierSet(
            version_guard.spec_of(low, high)), dist
    with open(os.path.join(REPO, 'setup.py')) as f:
        assert f"python_requires='>={version_guard.PYTHON}'" in f.read()


def test_mmcv_ranges_are_what_each_library_itself_accepts():
    """The upper bounds of MMCV_FOR are the ones MMPretrain, MMDetection and
    MMSegmentation check in their own __init__.py (read from their source,
    so that a new release of theirs that changes them fails here)."""
    import importlib.util
    declared = {}
    for package in ('mmpretrain', 'mmdet', 'mmseg'):
        path = importlib.util.find_spec(package).origin
        with open(path) as f:
            source = f.read()
        declared[package] = re.search(
            r"""^(?:mmcv_maximum_version|MMCV_MAX)\s*=\s*['"]([^'"]+)""",
            source, re.M).group(1)
    assert declared == {p: high for p, (_, _, high) in
                        version_guard.MMCV_FOR.items()}
    # classification, as MMPretrain, accepts more than detection does
    assert declared['mmpretrain'] == '2.4.0' and declared['mmdet'] == '2.2.0'


@pytest.mark.parametrize('library,version,ok', [
    ('mmpretrain', '2.1.0', True), ('mmpretrain', '2.3.2', True),
    ('mmpretrain', '2.4.0', False), ('mmpretrain', '2.0.1', False),
    ('mmdet', '2.1.0', True), ('mmdet', '2.2.0', False),
    ('mmseg', '2.1.0', True), ('mmseg', '2.3.0', False),
])
def test_mmcv_decision_per_library(library, version, ok):
    if ok:
        version_guard.check_mmcv_for(library, version)
        return
    with pytest.raises(version_guard.UnsupportedVersionError) as err:
        version_guard.check_mmcv_for(library, version)
    use, low, high = version_guard.MMCV_FOR[library]
    message = str(err.value)
    assert message.startswith(f'mmcv {version} is installed, but {use} '
                              f'needs mmcv>={low},<{high} ('), message
    # and says what the other libraries accept
    for other, (other_use, lo, hi) in version_guard.MMCV_FOR.items():
        if other != library:
            assert f'{other_use} accepts mmcv>={lo},<{hi}' in message
    assert 'Fix: with torch 2.1, `mim install mmcv==2.1.0`' in message


def test_mmcv_2_3_serves_classification_and_refuses_detection(monkeypatch):
    """With mmcv 2.3 installed, `import mmdynamixer`'s check passes
    (MMPretrain accepts it), an optional `import mmdet` is skipped as an
    ImportError, and a real one is refused naming both ranges."""
    real = version_guard.installed_version
    monkeypatch.setattr(version_guard, 'installed_version',
                        lambda p: '2.3.0' if p == 'mmcv' else real(p))
    for name in ('mmdet', 'mmseg'):  # as if not imported yet
        monkeypatch.delitem(sys.modules, name, raising=False)
    version_guard.check_versions()
    finder = version_guard._CheckOnImport()
    with version_guard.optional_imports_skip_unsupported():
        with pytest.raises(ImportError, match='detection with MMDetection '
                           r'needs mmcv>=2.1.0,<2.2.0'):
            finder.find_spec('mmdet')
    with pytest.raises(version_guard.UnsupportedVersionError,
                       match=r'segmentation with MMSegmentation needs '
                       r'mmcv>=2.1.0,<2.2.0 \(classification with '
                       r'MMPretrain accepts mmcv>=2.1.0,<2.4.0'):
        finder.find_spec('mmseg')


@pytest.mark.parametrize('package,version,ok', [
    ('torch', '2.1.2+cu121', True), ('torch', '2.1.0', True),
    ('torch', '2.15.0', True), ('torch', '2.0.1', False),
    ('torchvision', '0.16.2', True), ('torchvision', '0.15.2', False),
    ('numpy', '1.24.4', True), ('numpy', '2.4.6', True),
    ('numpy', '1.23.5', False),
])
def test_torch_and_numpy_decisions(package, version, ok):
    if ok:
        version_guard.check_version(package, version)
        return
    dist, low, _, fix = version_guard.SUPPORTED[package]
    with pytest.raises(version_guard.UnsupportedVersionError) as err:
        version_guard.check_version(package, version)
    assert str(err.value) == (f'{dist} {version} is installed, but '
                              f'mmdynamixer supports {dist}>={low}. '
                              f'Fix: {fix}.')


def test_python_decision():
    version_guard.check_python((3, 10, 13))
    with pytest.raises(version_guard.UnsupportedVersionError,
                       match=r'^Python 3.9.18 is running, but mmdynamixer '
                       r'supports Python >=3.10. Fix: use Python 3.10 or '
                       r'newer.$'):
        version_guard.check_python((3, 9, 18))


def test_torchvision_built_for_another_torch():
    check = version_guard.check_torchvision_matches_torch
    check('2.1.2+cu121', ['torch==2.1.2'])
    check('2.13.0', ['torch==2.13.0', 'numpy'])
    with pytest.raises(version_guard.UnsupportedVersionError,
                       match=r'built for torch==2.13.0, but torch 2.1.2 is '
                       r'installed. Fix: install the torchvision built for '
                       r'your torch'):
        check('2.1.2', ['torch==2.13.0'])
    check()  # the installed pair


def fake_package(root, name, version):
    """A stand-in of ``name`` at ``version`` that shadows the installed one
    when ``root`` comes first on the path."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / 'version.py').write_text(f"__version__ = '{version}'\n")
    (folder / '__init__.py').write_text('from .version import __version__\n')
    return root


def python(code, path, cwd=REPO):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(path), REPO, os.environ.get('PYTHONPATH', '')]))
    return subprocess.run([sys.executable, '-c', code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize('package,version,message', [
    ('mmcv', '2.4.0', "mmcv 2.4.0 is installed, but classification with "
     "MMPretrain needs mmcv>=2.1.0,<2.4.0 (detection with MMDetection "
     "accepts mmcv>=2.1.0,<2.2.0; segmentation with MMSegmentation accepts "
     "mmcv>=2.1.0,<2.2.0). Fix: with torch 2.1, `mim install mmcv==2.1.0`"),
    ('mmcv', '2.0.1', 'mmcv 2.0.1 is installed'),
    ('mmengine', '0.9.1', "mmengine 0.9.1 is installed, but mmdynamixer "
     "supports mmengine>=0.10.7,<1.0.0. Fix: pip install "
     "'mmengine>=0.10.7,<1.0.0'."),
    ('mmpretrain', '1.0.0', "mmpretrain 1.0.0 is installed, but mmdynamixer "
     "supports mmpretrain>=1.2.0,<2.0.0"),
    ('torch', '2.0.1', 'torch 2.0.1 is installed, but mmdynamixer supports '
     'torch>=2.1. Fix: install torch >= 2.1 with the torchvision built for '
     'it'),
    ('numpy', '1.23.5', 'numpy 1.23.5 is installed, but mmdynamixer '
     "supports numpy>=1.24. Fix: pip install 'numpy>=1.24'"),
])
def test_import_refuses_an_unsupported_requirement(tmp_path, package,
                                                   version, message):
    proc = python('import mmdynamixer',
                  fake_package(tmp_path, package, version))
    assert proc.returncode != 0
    # refused by the guard, before anything used the package
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('mmdynamixer.version_guard.UnsupportedVersionError'
                           ': '), proc.stderr[-2000:]
    assert message in last, last


def test_missing_requirement_names_the_fix(monkeypatch):
    monkeypatch.setattr(version_guard, 'installed_version', lambda _: None)
    with pytest.raises(version_guard.UnsupportedVersionError) as err:
        version_guard.check_version('mmpretrain')
    assert str(err.value) == (
        'mmdynamixer needs mmpretrain>=1.2.0,<2.0.0, and mmpretrain is not '
        "installed. Fix: pip install 'mmpretrain>=1.2.0,<2.0.0'.")


@pytest.mark.parametrize('order', ['after', 'before'])
def test_optional_packages_are_checked_when_imported(tmp_path, order):
    path = fake_package(tmp_path, 'mmdet', '3.2.0')
    code = ('import mmdynamixer; import mmdet' if order == 'after' else
            'import mmdet; import mmdynamixer')
    proc = python(code, path)
    assert proc.returncode != 0
    assert ("mmdet 3.2.0 is installed, but mmdynamixer supports "
            "mmdet>=3.3.0,<4.0.0. Fix: pip install 'mmdet>=3.3.0,<4.0.0'."
            in proc.stderr), proc.stderr[-2000:]


def test_unsupported_optional_package_does_not_block_classification(
        tmp_path):
    """MMPretrain tries `import mmdet` (inside try/except) when mmdynamixer
    imports it: an unsupported mmdet is skipped there, not imported, and
    refused only when something uses it."""
    proc = python('import sys, mmdynamixer; from mmpretrain import get_model; '
                  "get_model('dynamixer-s_8xb256_in1k'); "
                  "print('mmdet' in sys.modules); import mmdet",
                  fake_package(tmp_path, 'mmdet', '3.2.0'))
    assert proc.stdout.split()[-1] == 'False', proc.stderr[-2000:]
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].endswith(
        "Fix: pip install 'mmdet>=3.3.0,<4.0.0'.")


def test_missing_optional_package_fails_as_usual(monkeypatch):
    """Optional imports elsewhere (try: import mmseg / except ImportError)
    keep working: the hook lets a missing package's import fail as usual."""
    monkeypatch.setattr(version_guard, 'installed_version', lambda _: None)
    assert version_guard._CheckOnImport().find_spec('mmseg') is None


def test_unsupported_mmseg_through_a_config(tmp_path):
    """A segmentation config imports mmseg through its scope, after
    `custom_imports` imported mmdynamixer: the guard stops the run there."""
    path = fake_package(tmp_path, 'mmseg', '1.1.0')
    proc = run_tool('tools/train.py', 'configs/dynamixer_segmentation/'
                    'fpn_dynamixer-s_4xb4-80k_ade20k-512x512.py',
                    '--work-dir', str(tmp_path / 'work'),
                    env=dict(PYTHONPATH=str(path)), check=False)
    assert proc.returncode != 0
    assert ("mmsegmentation 1.1.0 is installed, but mmdynamixer supports "
            "mmsegmentation>=1.2.2,<2.0.0" in proc.stderr), \
        proc.stderr[-3000:]


def test_supported_stack_imports_cleanly():
    """The installed stack passes, and the import hook is installed once."""
    proc = python('import sys, mmdynamixer; '
                  'mmdynamixer.version_guard.check_versions(); '
                  'import mmdet, mmseg; '
                  'print(sum(type(f).__name__ == "_CheckOnImport" '
                  'for f in sys.meta_path))', '')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == '1'
