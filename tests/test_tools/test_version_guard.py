"""The version guard: `import mmdynamixer` refuses an unsupported mmcv,
mmengine or mmpretrain, and mmdet/mmseg when they are imported, with the
installed version, the supported range and the fix; its ranges are those of
the requirements files."""
import os
import subprocess
import sys

import pytest

from mmdynamixer import version_guard
from mmdx_testing import REPO, requirements_file, run_tool


def test_ranges_are_those_of_the_requirements_files():
    files = {r.name: r for r in requirements_file('mminstall.txt') +
             requirements_file('optional.txt')}
    for package, (dist, low, high, _) in version_guard.SUPPORTED.items():
        assert str(files[dist].specifier) == f'<{high},>={low}', dist


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
    ('mmcv', '2.2.0', "mmcv 2.2.0 is installed, but mmdynamixer supports "
     "mmcv>=2.1.0,<2.2.0. Fix: compile mmcv 2.1.0 against your torch: "
     "`MMCV_WITH_OPS=1 pip install --no-build-isolation mmcv==2.1.0`"),
    ('mmcv', '2.0.1', 'mmcv 2.0.1 is installed'),
    ('mmengine', '0.9.1', "mmengine 0.9.1 is installed, but mmdynamixer "
     "supports mmengine>=0.10.7,<1.0.0. Fix: pip install "
     "'mmengine>=0.10.7,<1.0.0'."),
    ('mmpretrain', '1.0.0', "mmpretrain 1.0.0 is installed, but mmdynamixer "
     "supports mmpretrain>=1.2.0,<2.0.0"),
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
