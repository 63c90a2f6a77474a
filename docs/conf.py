"""Sphinx configuration for the redbeat documentation."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

project = 'redbeat'
author = 'redbeat contributors'
copyright = 'redbeat contributors'
release = '3.0.0.dev0'
version = '3.0'

extensions = ['sphinx.ext.autodoc']
autodoc_typehints = 'description'

master_doc = 'index'
exclude_patterns = ['_build']
nitpicky = False
highlight_language = 'none'

html_theme = 'alabaster'
html_theme_options = {'description': 'A Celery Beat scheduler that keeps its schedule in Redis'}
