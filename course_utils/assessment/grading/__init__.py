"""The course's autograder: `course-grade` runs each submission in a fresh sandboxed process.

Kept free of imports so that the sandboxed child, which loads `harness` from this package,
loads nothing else from the grader.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `course-grade` command."""
    from .cli import main as cli_main

    return cli_main(argv)
