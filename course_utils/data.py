"""Text that needs no download, tokenizers, train/validation splits and batches of next-token pairs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch


def python_docs_text() -> str:
    """The prose of Python's own documentation (ships with CPython as `pydoc_data.topics`, ~0.5 MB).

    Its exact content varies with the Python version, so results on it need tolerances.
    """
    from pydoc_data import topics

    return "\n\n".join(topics.topics[key].strip() for key in sorted(topics.topics))


def load_text(path: str | Path) -> str:
    """A UTF-8 text file's content, with clear errors for a missing, empty or undecodable file."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"no such file: {p}")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{p} is not UTF-8 text (byte {exc.start} cannot be decoded)") from None
    if not text.strip():
        raise ValueError(f"{p} is empty: a corpus needs some text")
    return text


@dataclass(frozen=True)
class CharTokenizer:
    """Characters ↔ integer ids; the vocabulary is the sorted set of characters of a text."""

    chars: tuple[str, ...]

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        if not isinstance(text, str) or not text:
            raise ValueError("a tokenizer needs a non-empty text to build its vocabulary")
        return cls(tuple(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """Token ids (int64) of `text`; unknown characters are an error naming them."""
        index = {c: i for i, c in enumerate(self.chars)}
        unknown = sorted(set(text) - index.keys())
        if unknown:
            shown = ", ".join(repr(c) for c in unknown[:5])
            raise ValueError(f"characters not in the vocabulary: {shown}{' …' if len(unknown) > 5 else ''}")
        return torch.tensor([index[c] for c in text], dtype=torch.long)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        """The text of token ids; ids outside the vocabulary are an error."""
        values = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        bad = [i for i in values if not isinstance(i, int) or not 0 <= i < len(self.chars)]
        if bad:
            raise ValueError(f"token ids outside 0..{len(self.chars) - 1}: {bad[:5]}")
        return "".join(self.chars[i] for i in values)


def train_val_split(tokens: torch.Tensor, val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a 1-D token sequence into a leading training part and a trailing validation part."""
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be 1-dimensional, got shape {tuple(tokens.shape)}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be strictly between 0 and 1, got {val_fraction}")
    n_val = int(round(len(tokens) * val_fraction))
    if n_val == 0 or n_val == len(tokens):
        raise ValueError(f"splitting {len(tokens)} tokens with val_fraction={val_fraction} leaves a part empty")
    return tokens[:-n_val], tokens[-n_val:]


def random_batch(
    tokens: torch.Tensor, context: int, batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` random windows: inputs x[:, t] and next-token targets y[:, t] = x[:, t + 1]."""
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be 1-dimensional, got shape {tuple(tokens.shape)}")
    if context < 1 or batch_size < 1:
        raise ValueError(f"context and batch_size must be positive, got {context} and {batch_size}")
    if len(tokens) < context + 1:
        raise ValueError(f"the corpus has {len(tokens)} tokens, fewer than context + 1 = {context + 1}")
    starts = torch.randint(len(tokens) - context, (batch_size,), generator=generator)
    offsets = torch.arange(context + 1)
    windows = tokens[starts[:, None] + offsets]
    return windows[:, :-1], windows[:, 1:]
