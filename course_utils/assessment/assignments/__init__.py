"""The course's assignments, one module per chapter (`chNN_topic.py`, each defining `ASSIGNMENT`)."""

from __future__ import annotations

import importlib
import pkgutil
import re

from ..items import Assignment, Item

_MODULE = re.compile(r"^ch(\d\d)_\w+$")


def keys() -> list[str]:
    """Assignment keys such as '01_mle_coin_flips', in chapter order."""
    names = [m.name for m in pkgutil.iter_modules(__path__) if _MODULE.match(m.name)]
    return sorted(name[2:] for name in names)


def load(key: str) -> Assignment:
    """An assignment by number ('01', '1') or full key ('01_mle_coin_flips')."""
    text = str(key).strip()
    if text.isdigit():
        text = f"{int(text):02d}"
    for k in keys():
        if text in (k, k.split("_", 1)[0]):
            return importlib.import_module(f"{__name__}.ch{k}").ASSIGNMENT
    raise ValueError(f"unknown assignment {key!r}; known: {', '.join(keys()) or 'none'}")


def find_item(name: str) -> tuple[Assignment, Item]:
    """The assignment and item with this name (item names are unique across the course)."""
    for k in keys():
        assignment = load(k)
        for item in assignment.items:
            if item.name == name:
                return assignment, item
    raise ValueError(f"no graded item is called {name!r}")
