"""The course's autograder: `course-grade` runs each submission in a fresh sandboxed process.

    cli         the command line: reads submissions, runs them, writes the results
    parent      trusted: worker slots (Worker, Pool) and reading what comes back from the sandbox
    forkserver  the pre-imported server that forks one child per submission
    child       runs inside the sandbox: isolation, limits, the cells, the outcomes (Runner)
    protocol    the messages between those three, built and parsed in one place
    processes   Linux process helpers: kill a group or a uid, read /proc
    scoring     trusted: the expected values and each item's verdict (`verdict.item_verdict`)
    results     results.json, grades.csv (rebuilt from every result in the folder), the roster and lms.csv
    feedback    one Markdown or HTML feedback file per student
    report      the class report: per-item means, common failures, a score histogram
    manual      manually graded items: answers collected per item, scores merged back from a CSV
    notebook    lenient reading of a submission; gradescope: the autograder zip

Kept free of imports so that the fork server, which loads `forkserver` and `child` from this
package, loads nothing else from the grader.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `course-grade` command."""
    from .cli import main as cli_main

    return cli_main(argv)
