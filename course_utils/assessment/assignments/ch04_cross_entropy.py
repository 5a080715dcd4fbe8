"""Chapter 04 assignment: cross-entropy loss is negative log-likelihood."""

from __future__ import annotations

import torch

from ... import losses
from ..items import AnswerItem, Assignment, Case, FunctionItem


def stable_cross_entropy(logits, targets) -> float:
    """Mean cross-entropy of targets (N,) under softmax(logits) (N, V), computed stably."""
    return float(losses.cross_entropy(logits, targets))


def smoothed_cross_entropy(logits, targets, epsilon) -> float:
    """Mean cross-entropy to the smoothed targets (1 - ε) onehot(y) + ε / V."""
    return float(losses.cross_entropy(logits, targets, label_smoothing=epsilon))


def cross_entropy_gradient(logits, targets) -> torch.Tensor:
    """Gradient of the summed loss with respect to the logits: softmax(z) - onehot(y), shape (N, V)."""
    return losses.cross_entropy_grad(logits, targets)


def token_mean_loss(logits, targets, mask) -> float:
    """Mean loss over the real (mask = True) tokens of a padded batch: logits (B, T, V), targets (B, T)."""
    return float(losses.cross_entropy(logits, targets, mask=torch.as_tensor(mask)))


def log_likelihood_from_losses(token_losses, response_mask) -> float:
    """log Pr(y | x) = -(sum of the per-token losses at the response positions)."""
    t = torch.as_tensor(token_losses, dtype=torch.float64)
    m = torch.as_tensor(response_mask, dtype=torch.bool)
    if t.shape != m.shape:
        raise ValueError(f"token_losses and response_mask must have the same shape, got {tuple(t.shape)} "
                         f"and {tuple(m.shape)}")
    return 0.0 - float(t[m].sum())


def _logits(n: int, v: int, seed: int, scale: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = scale * torch.randn(n, v, generator=g, dtype=torch.float64)
    return z, torch.randint(0, v, (n,), generator=g)


def _large() -> tuple[torch.Tensor, torch.Tensor]:
    """Confident logits hundreds of nats apart: exp overflows and small probabilities underflow."""
    z = torch.tensor([[1000.0, 0.0, -1000.0], [5.0, 800.0, -3.0], [-750.0, 0.0, 750.0]], dtype=torch.float64)
    return z, torch.tensor([2, 1, 0])


def _padded(lengths: list[int], v: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    t = max(lengths)
    z = 2.0 * torch.randn(len(lengths), t, v, generator=g, dtype=torch.float64)
    y = torch.randint(0, v, (len(lengths), t), generator=g)
    mask = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
    return z, torch.where(mask, y, 0), mask


ASSIGNMENT = Assignment(
    key="04_cross_entropy",
    title="Cross-entropy loss is negative log-likelihood",
    items=(
        FunctionItem(
            name="stable_cross_entropy", points=2, reference=stable_cross_entropy,
            public=(Case((torch.tensor([[2.0, 1.0, 0.1]], dtype=torch.float64), torch.tensor([0]))),
                    Case(lambda: _logits(5, 4, 41))),
            hidden=(Case(_large),  # log(softmax) gives inf here, the literal formula NaN
                    Case(lambda: _logits(64, 10, 42, scale=30.0)),
                    Case(lambda: _logits(1, 2, 43)),
                    Case(lambda: (torch.full((3, 5), 7.0, dtype=torch.float64), torch.tensor([0, 4, 2])))),
            rtol=1e-6, atol=1e-9,
            hint="subtract each row's largest logit m before exponentiating: log Σ exp(z) = m + log Σ "
                 "exp(z - m); then the loss is logsumexp(z) - z_target, averaged over rows.",
        ),
        AnswerItem(
            name="ANSWER_IDENTICAL_CURVES", points=1, expected="C", choices=("A", "B", "C", "D"),
            hint="write out -Σ_j q_j log p_j for a one-hot q and see which terms survive.",
        ),
        AnswerItem(
            name="ANSWER_LABEL_REPRESENTATION", points=1, expected=False, choices=(True, False),
            hint="expand the cross-entropy to a smoothed target (1 - ε) onehot + ε/V: is it still -log p_target?",
        ),
        FunctionItem(
            name="smoothed_cross_entropy", points=2, reference=smoothed_cross_entropy,
            public=(Case((torch.tensor([[2.0, 1.0, 0.1]], dtype=torch.float64), torch.tensor([0]), 0.1)),
                    Case(lambda: _logits(6, 5, 44) + (0.2,))),
            hidden=(Case(lambda: _logits(8, 7, 45) + (0.0,)),  # no smoothing: plain cross-entropy
                    Case(lambda: _logits(8, 3, 46) + (0.5,)),
                    Case(lambda: _large() + (0.1,)),  # stability matters for every -log p_j
                    Case(lambda: _logits(4, 2, 47) + (0.9,))),
            rtol=1e-6, atol=1e-9,
            hint="the target puts 1 - ε + ε/V on the true token and ε/V on every token (ε/V, not "
                 "ε/(V-1)); the loss is (1 - ε)(-log p_y) + ε · mean_j(-log p_j), with a stable log-softmax.",
        ),
        FunctionItem(
            name="cross_entropy_gradient", points=2, reference=cross_entropy_gradient,
            public=(Case(lambda: _logits(3, 4, 48)),),
            hidden=(Case(_large), Case(lambda: _logits(10, 6, 49, scale=5.0)),
                    Case((torch.zeros(2, 4, dtype=torch.float64), torch.tensor([1, 3])))),
            rtol=1e-6, atol=1e-9,
            hint="softmax(z) minus the one-hot target, row by row, for the summed loss (do not divide by N); "
                 "compute softmax with the max subtracted (torch.softmax does).",
        ),
        FunctionItem(
            name="token_mean_loss", points=2, reference=token_mean_loss,
            public=(Case(lambda: _padded([4, 2], 5, 50)),),
            hidden=(Case(lambda: _padded([6, 6, 6], 4, 51)),  # no padding at all
                    Case(lambda: _padded([9, 1, 2], 6, 52)),  # mean of per-sequence means differs here
                    Case(lambda: _padded([3, 8], 3, 53))),
            rtol=1e-6, atol=1e-9,
            hint="add the losses of the real tokens only and divide by the number of real tokens "
                 "(mask.sum()), not by B·T and not per sequence.",
        ),
        FunctionItem(
            name="log_likelihood_from_losses", points=1, reference=log_likelihood_from_losses,
            public=(Case(([0.7, 0.4], [True, True])),
                    Case(([1.3, 0.2, 0.9, 0.7, 0.4], [False, False, False, True, True]))),
            hidden=(Case(([2.0, 0.5, 0.25], [True, False, True])),
                    Case(([0.1] * 30, [False] * 10 + [True] * 20)),
                    Case((torch.tensor([3.0, 1.5, 0.5], dtype=torch.float64), torch.tensor([False, True, True])))),
            rtol=1e-6, atol=1e-9,
            hint="a token's loss is -log Pr(token | everything before it): log Pr(y | x) is minus the sum "
                 "of the losses at the response positions only.",
        ),
        AnswerItem(
            name="ANSWER_KL_GAP", points=1, expected=0.23, atol=1e-6,
            hint="expected loss = entropy rate + KL rate.",
        ),
    ),
    notes={"lesson": "notebooks/04_cross_entropy.ipynb"},
)
