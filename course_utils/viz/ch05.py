"""Chapter 05 figures and explorers: training curves, attention cost, samples by temperature."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import ipywidgets as W
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from ..runtime import model_device
from ..train import History
from ..validate import positive_int
from .common import same_length, series
from .explorer import Explorer, Rejected

if TYPE_CHECKING:  # annotations only
    from ..models import Transformer
    from ..text import CharTokenizer


def smooth(values: Sequence[float], window: int = 20) -> list[float]:
    """Trailing moving average (the first points average what exists so far); `plot_curves` draws it."""
    window = positive_int(window, "window")
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_curves(runs: Mapping[str, History], floors: Mapping[str, float] | None = None, window: int = 20,
                title: str = "training and validation loss") -> Figure:
    """Per run: the smoothed training loss (thin) and the validation NLL (dots); optional horizontal floors."""
    if not runs:
        raise ValueError("plot_curves needs at least one run")
    for label, h in runs.items():
        same_length(**{f"{label!r} steps": h.steps, f"{label!r} train_loss": h.train_loss})
        same_length(**{f"{label!r} val_steps": h.val_steps, f"{label!r} val_loss": h.val_loss})
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (label, h) in enumerate(runs.items()):
        color = f"C{i}"
        ax.plot(h.steps, smooth(h.train_loss, window), color=color, lw=1, alpha=0.8, label=f"{label}: train")
        ax.plot(h.val_steps, h.val_loss, "o-", color=color, ms=4, label=f"{label}: validation")
    for j, (label, y) in enumerate((floors or {}).items()):
        ax.axhline(y, color="k", ls=["--", ":", "-."][j % 3], lw=1, label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel("loss (nats per token)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def plot_attention_cost(cost: Mapping[str, Sequence[float]]) -> Figure:
    """Time and memory of attention against sequence length on log-log axes, with a T² guide.

    `cost` is what `throughput.attention_cost` returns: lists "length", "seconds" and "score_mib".
    """
    missing = {"length", "seconds", "score_mib"} - set(cost)
    if missing:
        raise ValueError(f"cost lacks {sorted(missing)}: pass what throughput.attention_cost returns")
    same_length(length=cost["length"], seconds=cost["seconds"], score_mib=cost["score_mib"])
    for key in ("length", "seconds", "score_mib"):
        series(cost[key], key, positive=True)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    t = cost["length"]
    for ax, key, label in ((axes[0], "seconds", "time (s)"), (axes[1], "score_mib", "score matrix (MiB)")):
        ax.loglog(t, cost[key], "o-", label="measured")
        ax.loglog(t, [cost[key][-1] * (x / t[-1]) ** 2 for x in t], "k--", lw=1, label="∝ T²")
        ax.set_xticks(t, [str(x) for x in t])
        ax.minorticks_off()
        ax.set_xlabel("sequence length T")
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle("self-attention cost grows with the square of the length")
    fig.tight_layout()
    return fig


class SampleExplorer(Explorer):
    """Sample `length` characters after `prompt` at temperature τ; the same seed every time, so only τ differs.

    `mean_log_prob` is the model's own mean log-probability (nats per character) of the sampled
    characters; it falls as τ rises. A prompt with characters outside the vocabulary gives a ❌ line.
    The sample is shown as text (in `sample`), not as a figure.
    """

    def __init__(self, model: Transformer, tokenizer: CharTokenizer, prompt: str = "The ",
                 temperature: float = 1.0, length: int = 120, seed: int = 0) -> None:
        self.model, self.tokenizer, self.seed = model, tokenizer, seed
        self.length = positive_int(length, "length")
        self.temperature = W.FloatSlider(value=temperature, min=0.0, max=2.0, step=0.1, description="τ",
                                         continuous_update=False, readout_format=".1f")
        self.prompt = W.Text(value=prompt, description="prompt", continuous_update=False)
        self.sample = W.HTML()
        self.text: str = ""
        self.mean_log_prob: float | None = None
        super().__init__([[self.prompt, self.temperature]], draw=False, panels=[self.sample])

    def compute(self) -> str:
        try:
            ids = self.tokenizer.encode(self.prompt.value)
        except ValueError as exc:
            raise Rejected(str(exc), "type only characters of the corpus") from None
        if ids.numel() == 0:
            raise Rejected("the prompt is empty", "type at least one character of the corpus")
        context = self.model.config.context
        ids = ids[-context:].unsqueeze(0).to(model_device(self.model))
        generator = torch.Generator().manual_seed(self.seed)
        out = self.model.generate(ids, self.length, generator, temperature=self.temperature.value)
        new = out[:, ids.shape[1]:]
        inputs, targets = out[:, :-1][:, -context:], out[:, 1:][:, -context:]
        n_scored = min(new.shape[1], targets.shape[1])  # the last sampled characters, in one window
        with torch.no_grad():
            log_p = torch.log_softmax(self.model(inputs).float(), dim=-1)
            picked = log_p.gather(-1, targets[..., None])[0, -n_scored:]
        self.mean_log_prob = picked.mean().item()
        self.text = self.tokenizer.decode(new[0].cpu())
        self.sample.value = f"<pre>{html.escape(self.prompt.value + self.text)}</pre>"
        return (f"τ = {self.temperature.value:.1f} · mean log-probability of the last "
                f"{n_scored} sampled characters: {self.mean_log_prob:.3f} nats")

    def reset(self) -> None:
        self.text, self.mean_log_prob = "", None
        self.sample.value = ""
