"""Sphinx configuration for the redbeat documentation."""

from __future__ import annotations

import sys
from importlib.metadata import version as metadata_version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

project = 'redbeat'
author = 'redbeat contributors'
copyright = 'redbeat contributors'
# One version string: pyproject.toml's, as installed (docs are built from the installed tree).
release = metadata_version('redbeat-scheduler')
version = '.'.join(release.split('.')[:2])

extensions = ['sphinx.ext.autodoc']
autodoc_typehints = 'description'

master_doc = 'index'
exclude_patterns = ['_build']
# Every cross-reference to redbeat must resolve (a broken one fails the -W build);
# the standard library, Celery and redis-py have no inventory offline, so their
# names are left unlinked.
nitpicky = True
nitpick_ignore_regex = [
    (r'py:.*', r'(datetime|collections|typing|json|zoneinfo|celery|kombu|redis)(\..*)?'),
    (r'py:.*', r'Celery'),
]
highlight_language = 'none'

html_theme = 'alabaster'
html_theme_options = {'description': 'A Celery Beat scheduler that keeps its schedule in Redis'}
