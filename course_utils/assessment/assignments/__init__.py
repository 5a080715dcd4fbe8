"""The course's assignments, one module per chapter (`chNN_topic.py`, each defining its public part `PUBLIC`).

The instructor key of each chapter (hidden cases, the answers of answer items, the mistakes each item
must reject) is in `key/chNN_topic.py`, a package a student release leaves out. `load` joins the two
where the key is installed; without it an assignment grades its public part only.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re

from ..items import Assignment, Item

_MODULE = re.compile(r"^ch(\d\d)_\w+$")
KEY_PACKAGE = f"{__name__}.key"
_LOADED: dict[str, Assignment] = {}


def keys() -> list[str]:
    """Assignment keys such as '01_mle_coin_flips', in chapter order."""
    names = [m.name for m in pkgutil.iter_modules(__path__) if _MODULE.match(m.name)]
    return sorted(name[2:] for name in names)


def has_key() -> bool:
    """Whether the instructor key is installed here (an instructor's tree, not a student release)."""
    return importlib.util.find_spec(KEY_PACKAGE) is not None


def load(key: str) -> Assignment:
    """An assignment by number ('01', '1') or full key ('01_mle_coin_flips'), with its key where installed."""
    full = _full_key(key)
    if full not in _LOADED:
        assignment = public(full)
        if has_key():
            assignment = assignment.with_key(importlib.import_module(f"{KEY_PACKAGE}.ch{full}").KEY)
        _LOADED[full] = assignment
    return _LOADED[full]


def public(key: str) -> Assignment:
    """The public part of an assignment alone, as a student release has it."""
    return importlib.import_module(f"{__name__}.ch{_full_key(key)}").PUBLIC


def find_item(name: str) -> tuple[Assignment, Item]:
    """The assignment and item with this name (item names are unique across the course)."""
    for k in keys():
        assignment = load(k)
        for item in assignment.items:
            if item.name == name:
                return assignment, item
    raise ValueError(f"no graded item is called {name!r}")



def _full_key(key: str) -> str:
    text = str(key).strip()
    if text.isdigit():
        text = f"{int(text):02d}"
    for k in keys():
        if text in (k, k.split("_", 1)[0]):
            return k
    raise ValueError(f"unknown assignment {key!r}; known: {', '.join(keys()) or 'none'}")
