"""The README's pictures are what its commands write: each picture follows
a command of an existing tool whose output file is that picture, and the
picture is a PNG in the repository. (The tools themselves are tested on the
same trained model in test_embedded_default.py.)"""
import os.path as osp
import re

import cv2
import pytest

from mmdx_testing import REPO

README = open(osp.join(REPO, 'README.md')).read()
PICTURES = re.findall(r'<!-- picture:(\w+) -->\n```bash\n(.*?)```\n\n'
                      r'!\[[^\]]*\]\(([^)]+)\)', README, re.S)


def test_the_readme_has_its_three_pictures():
    assert [name for name, _, _ in PICTURES] == ['mixing', 'cam',
                                                 'diagnostics']


@pytest.mark.parametrize('name,command,picture', PICTURES,
                         ids=[p[0] for p in PICTURES])
def test_each_picture_is_the_output_of_its_command(name, command, picture):
    words = command.replace('\\\n', ' ').split()
    tool = next(w for w in words if w.startswith('tools/'))
    assert osp.isfile(osp.join(REPO, tool)), tool
    option = next(w for w in words if w in ('--out-file', '--save-path'))
    assert words[words.index(option) + 1] == picture
    image = cv2.imread(osp.join(REPO, picture))
    assert image is not None and min(image.shape[:2]) > 200, picture
