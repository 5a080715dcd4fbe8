"""Model text: corpora (Python's docs and docstrings, your files), character and word tokenizers, splits, batches."""

from __future__ import annotations

import ast
import re
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .validate import number_in, positive_int, torch_generator


def python_docs_text() -> str:
    """The prose of Python's own documentation (ships with CPython as `pydoc_data.topics`, ~0.5 MB).

    Its exact content varies with the Python version, so results on it need tolerances.
    """
    from pydoc_data import topics

    return "\n\n".join(topics.topics[key].strip() for key in sorted(topics.topics))


def python_docstrings_text() -> str:
    """The docstrings of the Python standard library's modules, classes and functions (~1.5 MB of English).

    Read from the source files with `ast` (nothing is imported, so no module runs), in file order, tests
    left out, each distinct docstring once. Like `python_docs_text` it varies with the Python version.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "idle_test", "site-packages", "__pycache__"}
    seen: dict[str, None] = {}
    for path in sorted(root.rglob("*.py")):
        if skip & set(path.relative_to(root).parts):
            continue
        for doc in _docstrings(path):
            seen.setdefault(doc, None)
    return "\n\n".join(seen)


def _docstrings(path: Path) -> list[str]:
    """The docstrings of one source file (none if it cannot be read or parsed by this Python)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
        return []
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    docs = (ast.get_docstring(node) for node in ast.walk(tree) if isinstance(node, kinds))
    return [d.strip() for d in docs if d and d.strip()]


CORPORA = ("python-docs", "python-docs+docstrings")


def corpus(name: str = "python-docs") -> str:
    """A corpus that needs no download, by name: Python's documentation (~0.5 MB), or it and the docstrings.

    "python-docs+docstrings" (~2 MB) is the larger one a GPU needs to train for long without overfitting.
    """
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; use one of {', '.join(CORPORA)}")
    if name == "python-docs":
        return python_docs_text()
    return python_docs_text() + "\n\n" + python_docstrings_text()


# Stays although no lesson calls it: the documented way to train on your own text (one UTF-8 file).
def load_text(path: str | Path) -> str:
    """A UTF-8 text file's content, with clear errors for a missing, empty or undecodable file.

    A leading byte-order mark (written by some editors) is dropped, not kept as a character.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"no such file: {p}")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
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
        return _ids_of(list(text), self.chars, "characters")

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        """The text of token ids; ids outside the vocabulary are an error."""
        return "".join(_symbols_of(ids, self.chars))


def train_val_split(tokens: torch.Tensor, val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a 1-D token sequence into a leading training part and a trailing validation part."""
    _check_stream(tokens)
    val_fraction = number_in(val_fraction, "val_fraction", 0.0, 1.0, include_low=False, include_high=False)
    n_val = int(round(len(tokens) * val_fraction))
    if n_val == 0 or n_val == len(tokens):
        raise ValueError(f"splitting {len(tokens)} tokens with val_fraction={val_fraction} leaves a part empty")
    return tokens[:-n_val], tokens[-n_val:]


def random_batch(
    tokens: torch.Tensor, context: int, batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` random windows: inputs x[:, t] and next-token targets y[:, t] = x[:, t + 1]."""
    _check_stream(tokens)
    context, batch_size = positive_int(context, "context"), positive_int(batch_size, "batch_size")
    torch_generator(generator)
    if len(tokens) < context + 1:
        raise ValueError(f"the corpus has {len(tokens)} tokens, fewer than context + 1 = {context + 1}")
    starts = torch.randint(len(tokens) - context, (batch_size,), generator=generator)
    offsets = torch.arange(context + 1)
    windows = tokens[starts[:, None] + offsets]
    return windows[:, :-1], windows[:, 1:]


_WORD = re.compile(r"\w+|[^\w\s]")


def split_words(text: str, lowercase: bool = False) -> list[str]:
    """Words and punctuation marks of `text`, in order ("Hi, you." → ['Hi', ',', 'you', '.'])."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    return _WORD.findall(text.lower() if lowercase else text)


@dataclass(frozen=True)
class WordTokenizer:
    """Words ↔ integer ids, for worked examples on sentences; the vocabulary is sorted."""

    words: tuple[str, ...]
    lowercase: bool = False

    @classmethod
    def from_text(cls, text: str | list[str], lowercase: bool = False) -> WordTokenizer:
        """The vocabulary of the words of a text (or of several texts)."""
        texts = [text] if isinstance(text, str) else text
        if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
            raise ValueError("a word tokenizer is built from a string or a list of strings")
        vocab = {w for t in texts for w in split_words(t, lowercase)}
        if not vocab:
            raise ValueError("a tokenizer needs a text with at least one word to build its vocabulary")
        return cls(tuple(sorted(vocab)), lowercase)

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> torch.Tensor:
        """Token ids (int64) of the words of `text`; unknown words are an error naming them."""
        return _ids_of(split_words(text, self.lowercase), self.words, "words")

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        """The words of token ids joined by single spaces; ids outside the vocabulary are an error."""
        return " ".join(_symbols_of(ids, self.words))


def _ids_of(symbols: Sequence[str], vocabulary: Sequence[str], kind: str) -> torch.Tensor:
    """The ids of `symbols` in `vocabulary` (int64); unknown ones are an error naming the first five."""
    index = {s: i for i, s in enumerate(vocabulary)}
    unknown = sorted(set(symbols) - index.keys())
    if unknown:
        shown = ", ".join(repr(s) for s in unknown[:5])
        raise ValueError(f"{kind} not in the vocabulary: {shown}{' …' if len(unknown) > 5 else ''}")
    return torch.tensor([index[s] for s in symbols], dtype=torch.long)


def _symbols_of(ids: torch.Tensor | list[int], vocabulary: Sequence[str]) -> list[str]:
    """The vocabulary entries of token ids; ids outside the vocabulary are an error."""
    values = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
    bad = [i for i in values if not isinstance(i, int) or not 0 <= i < len(vocabulary)]
    if bad:
        raise ValueError(f"token ids outside 0..{len(vocabulary) - 1}: {bad[:5]}")
    return [vocabulary[i] for i in values]


# ---------------------------------------------------------------- guards

def _check_stream(tokens: torch.Tensor) -> None:
    if not isinstance(tokens, torch.Tensor):
        raise ValueError(f"tokens must be a 1-dimensional tensor of token ids, got {type(tokens).__name__}")
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be 1-dimensional, got shape {tuple(tokens.shape)}")
