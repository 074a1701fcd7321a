# Copyright (c) mmdynamixer contributors. Licensed under the Apache License 2.0.
"""Sphinx configuration of mmdynamixer's documentation (MyST Markdown, as
OpenMMLab's docs). Build: python -m sphinx -W --keep-going -b html docs/en docs/en/_build/html"""
import os
import os.path as osp
import re

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))

project = 'mmdynamixer'
copyright = '2026, mmdynamixer contributors'
author = 'mmdynamixer contributors'
with open(osp.join(ROOT, 'mmdynamixer', 'version.py')) as f:
    release = re.search(r"__version__ = '([^']+)'", f.read()).group(1)
version = release

extensions = ['myst_parser', 'sphinx.ext.autodoc', 'sphinx.ext.napoleon',
              'sphinx.ext.viewcode']
source_suffix = {'.md': 'markdown', '.rst': 'restructuredtext'}
exclude_patterns = ['_build']
# GitHub's heading anchors (`#what-happens-when-`), so that the same links
# work on GitHub and in the built docs
myst_heading_anchors = 4
myst_enable_extensions = ['colon_fence']

autodoc_member_order = 'bysource'
autodoc_typehints = 'none'
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = 'sphinx_rtd_theme'
html_title = 'mmdynamixer'


# The model folders' READMEs (configs/*/README.md, as in MMPretrain) become
# the pages papers/<folder>.md of the docs, generated here on each build
# (git ignores them) with their links rewritten for their new place; links
# of the docs to those READMEs go to those pages.
HERE = osp.dirname(osp.abspath(__file__))
PAPERS = osp.join(HERE, 'papers')
FOLDERS = sorted(
    d for d in os.listdir(osp.join(ROOT, 'configs'))
    if not d.startswith('_') and osp.isfile(osp.join(ROOT, 'configs', d,
                                                       'README.md')))
LINK = re.compile(r'(\]\s*)\(([^)\s]+)\)')
README_LINK = re.compile(
    r'\]\((?:\.\./)+configs/([^/)#]+)/(?:README\.md)?(#[^)]*)?\)')


def generate_papers():
    os.makedirs(PAPERS, exist_ok=True)
    for folder in FOLDERS:
        with open(osp.join(ROOT, 'configs', folder, 'README.md')) as f:
            text = f.read()

        def relink(match, folder=folder):
            target = match.group(2)
            if '://' in target or target.startswith(('#', 'mailto:')):
                return match.group(0)
            path, _, anchor = target.partition('#')
            full = osp.normpath(osp.join(ROOT, 'configs', folder, path))
            readme = re.fullmatch(r'configs/([^/]+)/(README\.md)?',
                                  osp.relpath(full, ROOT) + (
                                      '/' if osp.isdir(full) else ''))
            new = (f'{readme.group(1)}.md' if readme else
                   osp.relpath(full, PAPERS))
            return f'{match.group(1)}({new}{"#" + anchor if anchor else ""})'

        text = LINK.sub(relink, text)
        page = osp.join(PAPERS, f'{folder}.md')
        if not osp.isfile(page) or open(page).read() != text:
            with open(page, 'w') as f:
                f.write(text)


def link_folder_readmes(app, docname, source):
    prefix = '../' * docname.count('/')
    source[0] = README_LINK.sub(
        lambda m: f']({prefix}papers/{m.group(1)}.md{m.group(2) or ""})',
        source[0])


generate_papers()


def setup(app):
    app.connect('source-read', link_folder_readmes)
