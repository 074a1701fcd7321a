"""The README and the manual (docs/en/) stay true: the docs build with
Sphinx and MyST with warnings as errors; every relative link of the README,
the docs and the model folders' READMEs resolves, anchors included; every
section that an error message points at exists; every command names tools,
configs and options that exist; every Python block runs (or, for the blocks
that need a stock detector or segmenter config, is run by test_det_seg.py);
the README stays a front page."""
import glob
import os.path as osp
import re
import shlex
import subprocess
import sys
from functools import lru_cache

import pytest

from mmdx_testing import REPO, run_tool

DOCS = osp.join(REPO, 'docs', 'en')
PAGES = sorted(p for p in glob.glob(osp.join(DOCS, '**', '*.md'),
                                    recursive=True)
               if osp.relpath(p, DOCS).split(osp.sep)[0] not in
               ('_build', 'papers'))
FOLDER_READMES = sorted(glob.glob(osp.join(REPO, 'configs', '*', 'README.md')))
README = osp.join(REPO, 'README.md')
MARKDOWN = [README, osp.join(REPO, 'CONTRIBUTING.md')] + PAGES + \
    FOLDER_READMES
rel = lambda path: osp.relpath(path, REPO)  # noqa: E731


def slug(heading: str) -> str:
    """GitHub's anchor of a heading (MyST's myst_heading_anchors makes the
    same): lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r'`|\*\*|\[([^\]]*)\]\([^)]*\)', r'\1', heading.strip())
    text = re.sub(r'[^\w\- ]', '', text.lower())
    return text.replace(' ', '-')


def anchors(path: str) -> set:
    text = re.sub(r'```.*?```', '', open(path).read(), flags=re.S)
    return {slug(m) for m in re.findall(r'^#{1,6} (.+)$', text, re.M)}


def links(path: str):
    text = re.sub(r'```.*?```', '', open(path).read(), flags=re.S)
    return re.findall(r'\]\(([^)\s]+)\)', text)


@pytest.mark.parametrize('path', MARKDOWN, ids=rel)
def test_every_relative_link_resolves(path):
    for target in links(path):
        if re.match(r'[a-z]+:', target):  # https:, mailto:
            continue
        file, _, anchor = target.partition('#')
        full = osp.normpath(osp.join(osp.dirname(path), file)) if file \
            else path
        assert osp.exists(full), f'{rel(path)}: {target} does not exist'
        if anchor:
            assert full.endswith('.md'), (rel(path), target)
            assert anchor in anchors(full), \
                f'{rel(path)}: no heading #{anchor} in {rel(full)}'


def test_error_messages_point_at_existing_sections():
    from mmdynamixer import doc_links
    targets = [doc_links.OWN_ENVIRONMENT, doc_links.BAD_IMAGES,
               *doc_links.PREPARE_DATA.values()]
    for target in targets:
        file, anchor = target.split('#')
        assert osp.isfile(osp.join(REPO, file)), target
        assert anchor in anchors(osp.join(REPO, file)), target
    # and no message of the package points at the README
    for source in glob.glob(osp.join(REPO, 'mmdynamixer', '**', '*.py'),
                            recursive=True):
        code = open(source).read()
        for string in re.findall(r"'[^'\n]*README[^'\n]*'", code):
            pytest.fail(f'{rel(source)}: {string}')


def test_readme_is_a_front_page():
    text = open(README).read()
    lines = text.splitlines()
    assert len(lines) <= 250, len(lines)
    headings = re.findall(r'^(#+) (.+)$', text, re.M)
    assert headings[0] == ('#', 'mmdynamixer')
    assert [h for h, _ in headings[1:]] == ['##'] * (len(headings) - 1)
    titles = [t for _, t in headings]
    assert titles[1] == 'Quick start'
    # what it is and its status come before the Quick start
    intro = text.split('## Quick start')[0]
    assert 'vision MLP' in intro and '**Status.**' in intro
    assert 'No ImageNet-trained DynaMixer weights exist' in intro
    quick = text.split('## Quick start')[1].split('\n## ')[0]
    block = re.search(r'```bash\n(.*?)```', quick, re.S).group(1)
    commands = [line.split('#')[0].strip() for line in block.splitlines()]
    assert commands == ['bash tools/quickstart.sh', 'bash tools/run_tests.sh']
    ci = open(osp.join(REPO, '.ci', 'run')).read()
    assert 'tools/run_tests.sh' in ci
    for needed in ('Citation', 'License'):
        assert needed in titles
    assert osp.isfile(osp.join(REPO, 'LICENSE'))
    assert 'Apache License' in open(osp.join(REPO, 'LICENSE')).read()


# --------------------------------------------------------------- commands

def code_blocks(lang):
    for path in [README] + PAGES:
        text = open(path).read()
        for match in re.finditer(rf'(<!-- (\S+) -->\n)?```{lang}\n(.*?)```',
                                 text, re.S):
            yield path, match.group(2), match.group(3)


def commands():
    """``(page, words)`` of each command line of the bash blocks."""
    for path, _, body in code_blocks('bash'):
        for line in body.replace('\\\n', ' ').splitlines():
            line = line.split(' #')[0].strip()
            if not line or line.startswith('#') or \
                    re.match(r'^[A-Z_]+=\$\(', line):
                continue  # comments; MMDX=$(python -c ...) assignments
            for command in line.split('&&'):
                words = shlex.split(command)
                while words and re.match(r'^[A-Z_]+=', words[0]):
                    words.pop(0)  # VAR=value prefixes
                if words:
                    yield path, words


MMPRETRAIN_TOOLS = '$MMPT/'  # MMPretrain's own tools (train_test.md)
# The commands that are not this package's tools, with what checks them.
OTHERS = {
    'pip': 'tests/test_tools/test_packaging.py (the wheel, its extras and '
           'a dry-run install into each tested stack)',
    'mim': 'tests/test_tools/test_packaging.py::'
           'test_installed_wheel_works_without_the_checkout',
    'tar': 'the mmcv build of tools/install.sh',
    'sed': 'the mmcv build of tools/install.sh',
}


def script_of(words):
    """The script a command runs and the script whose options it takes."""
    if words[0] in ('python', '.venv/bin/python', 'bash'):
        words = words[1:]
        if words[:2] == ['-m', 'sphinx']:
            return None, None
    script = words[0]
    if script.startswith('$MMDX/'):
        script = script[len('$MMDX/'):]
    options = {'tools/dist_train.sh': 'tools/train.py',
               'tools/dist_test.sh': 'tools/test.py'}.get(script, script)
    return script, options


@lru_cache(maxsize=None)
def options_of(script):
    if script.startswith(MMPRETRAIN_TOOLS):
        import mmpretrain
        path = osp.join(osp.dirname(mmpretrain.__file__), '.mim',
                        script[len(MMPRETRAIN_TOOLS):])
        out = subprocess.run([sys.executable, path, '--help'],
                             capture_output=True, text=True, cwd=REPO)
        help_text = out.stdout
    elif script.endswith('.py'):
        help_text = run_tool(script, '--help').stdout
    else:
        return None
    return set(re.findall(r'(--[\w-]+)', help_text))


def test_every_command_runs_an_existing_tool_with_its_options():
    seen = 0
    for path, words in commands():
        where = f'{rel(path)}: {" ".join(words)}'
        if words[0] in OTHERS:
            continue
        script, option_source = script_of(words)
        if script is None:  # python -m sphinx: test_docs_build runs it
            continue
        seen += 1
        if script.startswith(MMPRETRAIN_TOOLS):
            assert options_of(script) is not None, where
        else:
            assert osp.isfile(osp.join(REPO, script)), where
        for word in words[1:]:
            if re.match(r'^(\$MMDX/)?configs/.+\.py$', word):
                assert osp.isfile(osp.join(
                    REPO, word.replace('$MMDX/', ''))), where
        known = options_of(option_source)
        if known is not None:
            for word in words:
                flag = word.split('=')[0]
                if flag.startswith('--'):
                    assert flag in known, f'{where}: no option {flag}'
    assert seen >= 25, seen


# ---------------------------------------------------------- Python blocks

def test_python_blocks_run_or_are_run_elsewhere():
    """Plain Python runs; a config without a base builds its model and runs
    it; the blocks on stock detector and segmenter configs carry the marker
    by which test_det_seg.py pastes and trains them."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    blocks = list(code_blocks('python'))
    assert len(blocks) >= 6
    markers = {marker for _, marker, _ in blocks}
    assert {'swap:mmdet', 'swap:mmseg', 'safety'} <= markers
    det_seg = open(osp.join(REPO, 'tests', 'test_tools',
                            'test_det_seg.py')).read()
    for marker in ('swap:mmdet', 'swap:mmseg', 'safety'):
        assert f"'{marker}'" in det_seg, marker
    for path, marker, body in blocks:
        where = f'{rel(path)}: {body[:60]}'
        compile(body, where, 'exec')
        if '_base_' in body:  # pasted under stock configs by test_det_seg
            assert marker in ('swap:mmdet', 'swap:mmseg', 'safety'), where
        elif re.match(r'^\w+ = dict\(', body) and \
                'model = dict(' not in body:
            # a fragment of a config: it must read as one
            Config.fromstring(body, '.py')
        elif 'model = dict(' in body:
            cfg = Config.fromstring(body, '.py')
            init_default_scope('mmpretrain')
            backbone = cfg.model.backbone
            backbone.pop('init_cfg', None)  # no file to load in the test
            model = MODELS.build(cfg.model).eval()
            with torch.no_grad():
                scores = model(torch.rand(1, 3, 224, 224), mode='tensor')
            assert scores.shape == (1, cfg.model.head.num_classes), where
        else:
            namespace = {}
            exec(compile(body, where, 'exec'), namespace)
            if 'feats' in namespace:  # the plain-PyTorch snippet's comment
                shapes = [tuple(f.shape) for f in namespace['feats']]
                assert shapes == [(1, 192, 32, 32), (1, 384, 16, 16)], where


# ------------------------------------------------------------------ build

def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip(
        'myst_parser', reason='the docs toolchain (requirements/docs.txt) '
        'is installed on the Python >= 3.11 stacks only: MyST-Parser 5 '
        'needs Python 3.11')
    proc = subprocess.run(
        [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q', '-b',
         'html', DOCS, str(tmp_path / 'html')],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    index = (tmp_path / 'html' / 'index.html').read_text()
    for page in ('get_started', 'user_guides/detection_segmentation',
                 'notes/what_happens_when', 'papers/dynamixer'):
        assert f'{page}.html' in index, page
    # the model folders' READMEs are pages, with their links rewritten
    zoo = (tmp_path / 'html' / 'model_zoo.html').read_text()
    assert 'papers/dynamixer.html' in zoo
