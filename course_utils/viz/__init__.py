"""Figures and interactive explorers: `style()` once per lesson, then one module per chapter.

    viz.style()          the course's figure look (nothing changes on import)
    viz.common           figures more than one chapter uses (`curve`, `token_log_probs`) and their input checks
    viz.explorer         `Explorer`, the base of every explorer: controls, a summary line, a figure redrawn on change
    viz.ch01 … viz.ch07  each chapter's figures (each returns a matplotlib Figure) and explorers
"""

from .common import curve, style, token_log_probs

__all__ = ["curve", "style", "token_log_probs"]
