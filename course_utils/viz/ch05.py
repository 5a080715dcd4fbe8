"""Chapter 05 figures and explorers: training curves, attention cost, samples by temperature."""

from __future__ import annotations

import html

import ipywidgets as W
import matplotlib.pyplot as plt
import torch

from ..train import History


def smooth(values: list[float], window: int = 20) -> list[float]:
    """Trailing moving average (the first points average what exists so far)."""
    if window < 1:
        raise ValueError(f"window must be positive, got {window}")
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_curves(runs: dict[str, History], floors: dict[str, float] | None = None, window: int = 20,
                title: str = "training and validation loss", ax=None):
    """Per run: the smoothed training loss (thin) and the validation NLL (dots); optional horizontal floors."""
    if not runs:
        raise ValueError("plot_curves needs at least one run")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
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
    return ax


def plot_attention_cost(cost: dict[str, list[float]]):
    """Time and memory of attention against sequence length on log-log axes, with a T² guide."""
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


class SampleExplorer:
    """Sample `length` characters after `prompt` at temperature τ; the same seed every time, so only τ differs.

    `mean_log_prob` is the model's own mean log-probability (nats per character) of the sampled
    characters; it falls as τ rises. A prompt with characters outside the vocabulary gives a ❌ line.
    """

    def __init__(self, model, tokenizer, prompt: str = "The ", temperature: float = 1.0,
                 length: int = 120, seed: int = 0):
        if length < 1:
            raise ValueError(f"length must be positive, got {length}")
        self.model, self.tokenizer, self.length, self.seed = model, tokenizer, length, seed
        self.temperature = W.FloatSlider(value=temperature, min=0.0, max=2.0, step=0.1, description="τ",
                                         continuous_update=False, readout_format=".1f")
        self.prompt = W.Text(value=prompt, description="prompt", continuous_update=False)
        self.summary = W.HTML()
        self.sample = W.HTML()
        self.text: str = ""
        self.mean_log_prob: float | None = None
        self.temperature.observe(self._update, names="value")
        self.prompt.observe(self._update, names="value")
        self.widget = W.VBox([W.HBox([self.prompt, self.temperature]), self.summary, self.sample])
        self._update()

    def _update(self, _change: object = None) -> None:
        try:
            ids = self.tokenizer.encode(self.prompt.value)
            if ids.numel() == 0:
                raise ValueError("the prompt is empty")
        except ValueError as exc:
            self.text, self.mean_log_prob = "", None
            self.summary.value = f"❌ {html.escape(str(exc))}. Hint: type at least one character of the corpus."
            self.sample.value = ""
            return
        device = next(self.model.parameters()).device
        ids = ids[-self.model.config.context:].unsqueeze(0).to(device)
        generator = torch.Generator().manual_seed(self.seed)
        out = self.model.generate(ids, self.length, generator, temperature=self.temperature.value)
        new = out[:, ids.shape[1]:]
        context = self.model.config.context
        inputs, targets = out[:, :-1][:, -context:], out[:, 1:][:, -context:]
        n_scored = min(new.shape[1], targets.shape[1])  # the last sampled characters, in one window
        with torch.no_grad():
            log_p = torch.log_softmax(self.model(inputs).float(), dim=-1)
            picked = log_p.gather(-1, targets[..., None])[0, -n_scored:]
        self.mean_log_prob = picked.mean().item()
        self.text = self.tokenizer.decode(new[0].cpu())
        self.summary.value = (f"τ = {self.temperature.value:.1f} · mean log-probability of the last "
                              f"{n_scored} sampled characters: {self.mean_log_prob:.3f} nats")
        self.sample.value = f"<pre>{html.escape(self.prompt.value + self.text)}</pre>"

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
