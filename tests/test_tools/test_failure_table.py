"""The "What happens when ..." table of the notes: every row names the tests
that feed its input through the tools, and those tests exist."""
import os.path as osp
import re

from mmdx_testing import REPO


def table_rows():
    text = open(osp.join(REPO, 'docs', 'en', 'notes',
                         'what_happens_when.md')).read()
    return [line for line in text.splitlines()
            if line.startswith('| ') and not line.startswith('| when')]


def test_every_row_names_existing_tests():
    rows = table_rows()
    assert len(rows) >= 15
    for row in rows:
        cells = [c.strip() for c in row.strip('|').split(' | ')]
        assert len(cells) == 3, row
        tests = re.findall(r'`([^`]*::\w+)`', cells[2])
        assert tests, row
        path = None
        for test in tests:
            file, name = test.split('::')
            path = osp.join(REPO, 'tests', file) if file else path
            assert path and osp.isfile(path), (row, test)
            assert re.search(rf'^def {name}\(', open(path).read(), re.M), \
                (row, test)
