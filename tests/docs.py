"""The code blocks of a documentation page, so tests run its examples verbatim."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / 'docs'


def blocks(page: str, language: str) -> list[str]:
    """The ``code-block:: <language>`` bodies of ``docs/<page>``, dedented, in order."""
    found = []
    pattern = rf'^\.\. code-block:: {language}\n\n((?: +.*\n|\n)+)'
    for match in re.finditer(pattern, (DOCS / page).read_text(), flags=re.M):
        found.append(textwrap.dedent(match.group(1).rstrip('\n')) + '\n')
    return found


def commands(block: str) -> list[str]:
    """The ``$ ...`` lines of a console block, without the prompt."""
    return [line[2:] for line in block.splitlines() if line.startswith('$ ')]


def acl_setuser(page: str = 'deployment.rst') -> list[str]:
    """The ``ACL SETUSER`` command of the page's ACL recipe, as arguments."""
    [recipe] = [b for b in blocks(page, 'text') if b.startswith('ACL SETUSER')]
    return recipe.split()


def acl_rules() -> list[str]:
    """The recipe's rules: what follows ``ACL SETUSER <user> on >password``."""
    return acl_setuser()[5:]


def steps(block: str) -> list[tuple[str, list[str]]]:
    """A console block as (command, the output lines shown after it)."""
    found: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith('$ '):
            found.append((line[2:], []))
        elif found:
            found[-1][1].append(line)
    return found
