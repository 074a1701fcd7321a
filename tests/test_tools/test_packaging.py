"""The package as a user installs it: a wheel that states ranges (never exact
pins of torch or OpenMMLab) and carries its configs and model index, so that
the model zoo, get_model and the Inferencer work from a non-editable install
without the checkout; and the tested stacks that tools/install.sh pins."""
import glob
import os
import os.path as osp
import subprocess
import sys
import zipfile
from email.parser import Parser

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as canonical
from packaging.version import Version

from mmdx_testing import REPO, requirements_file, run_tool


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp('wheel')
    # no build isolation: the build needs only this venv's setuptools
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
                    '--no-build-isolation', '-q', '-w', str(out), REPO],
                   check=True, capture_output=True, text=True, timeout=600)
    return glob.glob(str(out / 'mmdynamixer-*.whl'))[0]


def metadata(wheel):
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist()
                    if n.endswith('.dist-info/METADATA'))
        return Parser().parsestr(zf.read(name).decode())


def test_wheel_states_ranges_not_pins(wheel):
    requires = [Requirement(r) for r in metadata(wheel).get_all(
        'Requires-Dist')]
    plain = {r.name: r for r in requires if r.marker is None}
    # what `import mmdynamixer` needs; mmcv and mmengine are checked at
    # import, not installed by pip (mmcv would build without its ops, and
    # mmengine brings opencv-python beside opencv-python-headless)
    assert set(plain) == {'numpy', 'packaging', 'torch', 'torchvision',
                          'mmpretrain'}
    for r in requires:
        assert not any(s.operator in ('==', '===') for s in r.specifier), r
    assert str(plain['torch'].specifier).startswith('>=')
    extras = {str(r.marker).split('"')[1] for r in requires if r.marker}
    assert {'det', 'seg', 'deploy', 'tests', 'mim', 'all'} <= extras
    by_extra = lambda e: {r.name for r in requires  # noqa: E731
                          if r.marker and f'"{e}"' in str(r.marker)}
    assert by_extra('det') >= {'mmdet', 'setuptools'}
    assert by_extra('seg') >= {'mmsegmentation', 'ftfy', 'regex'}
    assert by_extra('deploy') == {'onnx', 'onnxruntime'}
    assert by_extra('mim') == {'mmcv', 'mmengine', 'mmpretrain'}
    assert by_extra('tests') >= by_extra('det') | by_extra('seg') | \
        by_extra('deploy') | {'pytest'}


def test_wheel_carries_configs_tools_and_model_index(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    tracked = subprocess.run(['git', 'ls-files', 'configs', 'tools',
                              'model-index.yml'], cwd=REPO, check=True,
                             capture_output=True, text=True).stdout.split()
    assert len(tracked) > 30
    missing = [f for f in tracked if f'mmdynamixer/.mim/{f}' not in names]
    assert not missing
    assert not any(n.startswith(('tests/', 'configs/')) for n in names)


@pytest.fixture(scope='module')
def installed(wheel, tmp_path_factory):
    """The wheel installed with pip into a folder of its own (not this
    venv), and an empty directory to run from."""
    target = tmp_path_factory.mktemp('site')
    subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-deps', '-q',
                    '--target', str(target), wheel], check=True,
                   capture_output=True, text=True, timeout=600)
    elsewhere = tmp_path_factory.mktemp('elsewhere')
    return target, elsewhere


def run_installed(installed, code):
    target, elsewhere = installed
    env = dict(os.environ, PYTHONPATH=str(target))
    proc = subprocess.run([sys.executable, '-c', code], cwd=elsewhere,
                          env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_dry_run_install_into_this_stack_adds_nothing_else(wheel):
    """`pip install --dry-run` of the package, with the detection and
    segmentation extras, into the environment that runs the suite (each
    tested stack's venv): pip would install mmdynamixer and nothing else,
    so none of the user's torch, numpy or OpenMMLab packages is replaced.
    --no-index: anything not already satisfied fails here instead of
    being downloaded."""
    import json
    proc = subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '--dry-run', '--no-index',
         '--disable-pip-version-check', '-q', '--report', '-',
         f'{wheel}[det,seg]'], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    names = [item['metadata']['name'] for item in report['install']]
    assert names == ['mmdynamixer'], names


def test_installed_wheel_works_without_the_checkout(installed, tmp_path):
    """From another directory, with the installed copy only: the zoo,
    get_model and the Inferencer."""
    target, _ = installed
    import torch
    import mmdynamixer  # noqa: F401
    from mmpretrain import get_model
    model = get_model('dynamixer-s_8xb256_in1k')
    state = model.state_dict()
    state['head.fc.bias'] = 10 * torch.arange(1000.)  # to see it loaded
    ckpt = tmp_path / 's.pth'
    torch.save({'state_dict': state, 'meta': {}}, ckpt)
    code = f'''
import numpy as np, torch, mmdynamixer, mmpretrain
from mmpretrain import ImageClassificationInferencer, get_model
assert mmdynamixer.__file__.startswith({str(target)!r}), mmdynamixer.__file__
names = mmpretrain.list_models('dynamixer*')
assert {{'dynamixer-s_8xb256_in1k', 'dynamixer-m_8xb128_in1k',
         'dynamixer-l_8xb64_in1k'}} <= set(names), names
model = get_model('dynamixer-m_8xb128_in1k')
print('params', sum(p.numel() for p in model.parameters()))
inferencer = ImageClassificationInferencer('dynamixer-s_8xb256_in1k',
                                           pretrained={str(ckpt)!r})
assert torch.equal(inferencer.model.head.fc.bias, 10 * torch.arange(1000.))
image = np.random.default_rng(0).integers(0, 255, (300, 260, 3), np.uint8)
result = inferencer(image)[0]
print('label', result['pred_label'], len(result['pred_scores']))
'''
    out = run_installed(installed, code)
    assert 'params 57128264' in out  # DynaMixer-M, as published
    # the head's bias is 0, 10, ..., 9990: the prediction is the last class
    assert 'label 999 1000' in out, out


def test_installed_dense_configs_build_and_run(installed):
    """The detection and segmentation configs the wheel carries, run with
    MMDetection's and MMSegmentation's own inference APIs from another
    directory: they build (mmdet::/mmseg:: bases, custom_imports) and
    predict on an image of a size that is no multiple of the strides."""
    target, _ = installed
    configs = osp.join(str(target), 'mmdynamixer', '.mim', 'configs')
    code = f'''
import os.path as osp
import numpy as np
import mmdynamixer
configs = {configs!r}
assert mmdynamixer.__file__.startswith({str(target)!r})
image = np.random.default_rng(0).integers(0, 255, (150, 130, 3), np.uint8)

from mmdet.apis import inference_detector, init_detector
det = init_detector(
    osp.join(configs, 'dynamixer_detection',
             'retinanet_dynamixer-s_fpn_8xb2-1x_coco.py'), None,
    device='cpu', cfg_options={{
        'test_dataloader.dataset.pipeline.1.scale': (200, 180)}})
result = inference_detector(det, image)
print('det', type(det.backbone).__name__, det.backbone.sliding_window,
      result.pred_instances.bboxes.shape[1])

from mmseg.apis import inference_model, init_model
seg = init_model(
    osp.join(configs, 'dynamixer_segmentation',
             'fpn_dynamixer-s_4xb4-80k_ade20k-512x512.py'), None,
    device='cpu', cfg_options={{
        'model.backbone.init_cfg': None,
        'model.test_cfg': dict(mode='whole'),
        'test_pipeline.1.scale': (200, 150)}})
result = inference_model(seg, image)
print('seg', type(seg.backbone).__name__,
      tuple(result.pred_sem_seg.data.shape),
      int(result.pred_sem_seg.data.max()) < 150)
'''
    out = run_installed(installed, code)
    assert 'det DynaMixer True 4' in out, out
    # the segmentation map is predicted for the input image's own size
    assert 'seg DynaMixer (1, 150, 130) True' in out, out


def constraints(name):
    pins = {}
    for r in requirements_file(name):
        assert len(r.specifier) == 1, r
        spec = next(iter(r.specifier))
        assert spec.operator in ('==', '==='), r
        assert canonical(r.name) not in pins, f'{r.name} twice'
        pins[canonical(r.name)] = spec.version
    return pins


@pytest.mark.parametrize('name', [osp.basename(p) for p in glob.glob(
    osp.join(REPO, 'requirements', 'constraints*.txt'))])
def test_tested_stacks_are_exact_and_within_the_ranges(name):
    pins = constraints(name)
    for req_file in ('runtime.txt', 'mminstall.txt', 'optional.txt',
                     'tests.txt'):
        for r in requirements_file(req_file):
            pkg = canonical(r.name)
            assert pkg in pins, f'{name} does not pin {r.name}'
            assert r.specifier.contains(pins[pkg], prereleases=True), \
                f'{name}: {r.name}=={pins[pkg]} is outside {r}'
    assert 'torchvision' in pins and 'opencv-python-headless' in pins


def stack_files():
    return sorted(p for p in os.listdir(osp.join(REPO, 'requirements'))
                  if p.startswith('constraints'))


def stack_python(name):
    """The Python a constraints file names on its first line."""
    with open(osp.join(REPO, 'requirements', name)) as f:
        first = f.readline()
    assert first.startswith('# python: '), (name, first)
    return Version(first.split(':')[1].strip())


def test_every_lower_bound_is_a_tested_row():
    """Each lower bound of what `import mmdynamixer` needs (and of
    python_requires) is the release of some tested stack: no range reaches
    below what the whole suite passed on."""
    import re
    pins = {name: constraints(name) for name in stack_files()}
    bounds = {r.name: next(s.version for s in r.specifier
                           if s.operator == '>=')
              for r in requirements_file('runtime.txt') if r.specifier}
    assert set(bounds) == {'numpy', 'torch', 'torchvision'}
    for package, low in bounds.items():
        low = Version(low)
        tested = sorted(Version(p[package]) for p in pins.values())
        assert tested[0].release[:len(low.release)] == low.release, \
            f'{package}>={low}: the oldest tested is {tested[0]}'
    with open(osp.join(REPO, 'setup.py')) as f:
        python = Version(re.search(r"python_requires='>=([\d.]+)'",
                                   f.read()).group(1))
    assert min(stack_python(name) for name in stack_files()) == python
    # numpy 1.x and 2.x are both tested; torch 2.1 and the newest
    numpys = {Version(p['numpy']).major for p in pins.values()}
    assert numpys == {1, 2}


def test_install_refuses_an_untested_torch_before_doing_anything(tmp_path):
    venv = tmp_path / 'venv'
    # STACK='' : the stack is TORCH's, whatever the caller's STACK says
    proc = run_tool('tools/install.sh', env=dict(TORCH='2.12.1', STACK='',
                                                 VENV=str(venv)),
                    check=False, timeout=60)
    assert proc.returncode == 2
    default = constraints('constraints.txt')['torch']
    others = ' '.join(f'STACK={n[len("constraints-"):-len(".txt")]}'
                      for n in stack_files() if n != 'constraints.txt')
    assert len(stack_files()) >= 3
    assert 'TORCH=2.12.1 is not a tested stack' in proc.stderr
    assert 'cannot build mmcv 2.1.0' in proc.stderr
    assert (f'Choose one of: TORCH={default} (the default) {others} (each '
            'is a') in proc.stderr, proc.stderr
    assert not venv.exists()


def test_install_refuses_a_python_that_does_not_run(tmp_path):
    venv = tmp_path / 'venv'
    proc = run_tool('tools/install.sh', env=dict(
        PYTHON='python-missing', VENV=str(venv), TORCH='2.1.2', STACK=''),
        check=False, timeout=60)
    assert proc.returncode == 2
    assert ('error: PYTHON=python-missing does not run as Python 3.10 or '
            'newer') in proc.stderr, proc.stderr
    assert ('requirements/constraints-torch2.1.2.txt was tested with Python '
            '3.10') in proc.stderr
    assert not venv.exists()
