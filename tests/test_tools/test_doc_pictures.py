"""The pictures of the visualisation guide are what its commands write:
each picture follows a command of an existing tool whose output file is that
picture, and the picture is a PNG in the repository; the README shows one of
them. (The tools themselves are tested on the
same trained model in test_embedded_default.py.)"""
import os.path as osp
import re

import cv2
import pytest

from mmdx_testing import REPO

GUIDE = osp.join(REPO, 'docs', 'en', 'useful_tools', 'visualization.md')
PICTURES = re.findall(r'<!-- picture:(\w+) -->\n```bash\n(.*?)```\n\n'
                      r'!\[[^\]]*\]\(([^)]+)\)', open(GUIDE).read(), re.S)


def test_the_guide_has_its_three_pictures():
    assert [name for name, _, _ in PICTURES] == ['mixing', 'cam',
                                                 'diagnostics']


@pytest.mark.parametrize('name,command,picture', PICTURES,
                         ids=[p[0] for p in PICTURES])
def test_each_picture_is_the_output_of_its_command(name, command, picture):
    words = command.replace('\\\n', ' ').split()
    tool = next(w for w in words if w.startswith('tools/'))
    assert osp.isfile(osp.join(REPO, tool)), tool
    option = next(w for w in words if w in ('--out-file', '--save-path'))
    # the command runs in the repository root; the picture's link is
    # relative to the guide
    out_file = words[words.index(option) + 1]
    assert osp.normpath(osp.join(osp.dirname(GUIDE), picture)) == \
        osp.join(REPO, out_file), (out_file, picture)
    image = cv2.imread(osp.join(REPO, out_file))
    assert image is not None and min(image.shape[:2]) > 200, picture


def test_the_readme_shows_a_picture_of_the_guide():
    readme = open(osp.join(REPO, 'README.md')).read()
    shown = re.findall(r'!\[[^\]]*\]\(([^)]+)\)', readme)
    made = {osp.normpath(osp.join(osp.dirname(GUIDE), p))
            for _, _, p in PICTURES}
    assert shown and {osp.join(REPO, p) for p in shown} <= made, shown
