"""mmdynamixer: DynaMixer (ICML 2022) for MMPretrain, MMDetection and
MMSegmentation.

Installs into an existing OpenMMLab environment: ``install_requires`` states
version ranges (requirements/runtime.txt and the mmpretrain line of
requirements/mminstall.txt), never exact pins; ``tools/install.sh`` installs
the exactly pinned, tested stack of requirements/constraints.txt instead.

mmcv and mmengine are left to the environment, as in OpenMMLab's own packages
(the ``mim`` extra lists them), and ``import mmdynamixer`` checks them and
says how to get a supported one (see the README's "Use in your own
environment"): pip would build mmcv from source in an isolated environment
without torch, which silently gives an mmcv without its compiled ops, and
mmengine asks for opencv-python, which would land beside an environment's
opencv-python-headless (the same ``cv2``, needing the system's libGL).

The wheel carries the configs, the model index and the tools under
``mmdynamixer/.mim``, as OpenMMLab packages do for MIM, so that
``mmpretrain.get_model('dynamixer-s_8xb256_in1k')`` works without a checkout.
"""
import os.path as osp
import re
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def read(path):
    with open(osp.join(HERE, path), encoding='utf-8') as f:
        return f.read()


def version():
    return re.search(r"^__version__ = '([^']+)'", read('mmdynamixer/version.py'),
                     re.M).group(1)


def requirements(path):
    """``(requirement, comment)`` of each line of a requirements file."""
    lines = []
    for line in read(path).splitlines():
        requirement, _, comment = line.partition('#')
        if requirement.strip():
            lines.append((requirement.strip(), comment.strip()))
    return lines


def optional_extras(path='requirements/optional.txt'):
    """Extras from the ``[tag,...]`` at the start of each line's comment."""
    extras = {}
    for requirement, comment in requirements(path):
        tags = re.match(r'\[([\w,]+)\]', comment)
        if not tags:
            raise ValueError(f'{path}: {requirement!r} has no [extra] tag')
        for tag in tags.group(1).split(','):
            extras.setdefault(tag, []).append(requirement)
    return extras


mminstall = [r for r, _ in requirements('requirements/mminstall.txt')]
install_requires = [r for r, _ in requirements('requirements/runtime.txt')] + [
    r for r in mminstall if r.startswith('mmpretrain')]
extras = optional_extras()
extras['mim'] = mminstall
extras['docs'] = [r for r, _ in requirements('requirements/docs.txt')]
extras['tests'] = sorted({r for name in extras if name not in ('mim', 'docs')
                          for r in extras[name]} |
                         {r for r, _ in requirements('requirements/tests.txt')})
extras['all'] = sorted({r for name in extras for r in extras[name]})


class BuildPyWithMim(build_py):
    """Copy configs/, tools/ and model-index.yml into ``mmdynamixer/.mim``
    of the build (never into the source tree)."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return  # an editable install reads them from the checkout
        mim = osp.join(self.build_lib, 'mmdynamixer', '.mim')
        for name in MIM_FILES:
            src, dst = osp.join(HERE, name), osp.join(mim, name)
            if osp.isdir(dst):
                shutil.rmtree(dst)
            if osp.isdir(src):
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
                    '__pycache__', '*.pyc'))
            else:
                shutil.copyfile(src, dst)


setup(
    name='mmdynamixer',
    version=version(),
    description='DynaMixer (ICML 2022) for MMPretrain, MMDetection and '
    'MMSegmentation',
    long_description=read('README.md'),
    long_description_content_type='text/markdown',
    keywords='computer vision, vision MLP, image classification, '
    'object detection, semantic segmentation',
    license='Apache License 2.0',
    license_files=['LICENSE'],
    classifiers=[
        'License :: OSI Approved :: Apache Software License',
        'Operating System :: POSIX :: Linux',
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3.10',
        'Programming Language :: Python :: 3.11',
        'Programming Language :: Python :: 3.12',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    python_requires='>=3.10',
    packages=find_packages(include=['mmdynamixer', 'mmdynamixer.*']),
    install_requires=install_requires,
    extras_require=extras,
    cmdclass={'build_py': BuildPyWithMim},
    zip_safe=False,
)
