"""Chapter 04 assignment: cross-entropy loss is negative log-likelihood."""

from __future__ import annotations

import torch

from ... import losses
from ...information import entropy, kl_divergence
from ...validate import same_shape
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


def sequence_losses(logits, targets, mask) -> torch.Tensor:
    """-log Pr of each sequence of a padded batch: the SUM of its real tokens' losses, shape (B,)."""
    return losses.sequence_nll(logits, targets, torch.as_tensor(mask))


def log_likelihood_from_losses(token_losses, response_mask) -> float:
    """log Pr(y | x) = -(sum of the per-token losses at the response positions)."""
    t = torch.as_tensor(token_losses, dtype=torch.float64)
    m = torch.as_tensor(response_mask, dtype=torch.bool)
    same_shape(t, m, ("token_losses", "response_mask"))
    return 0.0 - float(t[m].sum())


def loss_floor_and_gap(p_data, q_model) -> tuple[float, float]:
    """(H(p), KL(p ‖ q)) in nats: the lowest expected loss any model can reach, and this model's excess over it."""
    return entropy(p_data), kl_divergence(p_data, q_model)


# ---------------------------------------------------------------- the cases' arguments

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


PUBLIC = Assignment(
    key="04_cross_entropy",
    title="Cross-entropy loss is negative log-likelihood",
    items=(
        FunctionItem(
            name="stable_cross_entropy", points=2, reference=stable_cross_entropy,
            public=(Case((torch.tensor([[2.0, 1.0, 0.1]], dtype=torch.float64), torch.tensor([0]))),
                    Case(lambda: _logits(5, 4, 41)),
                    Case(_large)),  # log(softmax) gives inf here, the literal formula NaN
            rtol=1e-6, atol=1e-9,
            hint="subtract each row's largest logit m before exponentiating: log Σ exp(z) = m + log Σ "
                 "exp(z - m); then the loss is logsumexp(z) - z_target, averaged over rows.",
            non_finite_hint="your loss is not finite for logits in the hundreds: exp(1000) overflows to inf and "
                            "a probability of e^-2000 underflows to 0, whose log is -inf. Subtract each row's "
                            "largest logit before exponentiating.",
        ),
        AnswerItem(
            name="ANSWER_IDENTICAL_CURVES", points=1, choices=("A", "B", "C", "D"),
            hint="write out -Σ_j q_j log p_j for a one-hot q and see which terms survive.",
        ),
        AnswerItem(
            name="ANSWER_LABEL_REPRESENTATION", points=1, choices=(True, False),
            hint="expand the cross-entropy to a smoothed target (1 - ε) onehot + ε/V: is it still -log p_target?",
        ),
        FunctionItem(
            name="smoothed_cross_entropy", points=2, reference=smoothed_cross_entropy,
            public=(Case((torch.tensor([[2.0, 1.0, 0.1]], dtype=torch.float64), torch.tensor([0]), 0.1)),
                    Case(lambda: _logits(6, 5, 44) + (0.2,)),
                    Case(lambda: _large() + (0.1,))),  # stability matters for every -log p_j
            rtol=1e-6, atol=1e-9,
            hint="the target puts 1 - ε + ε/V on the true token and ε/V on every token (ε/V, not "
                 "ε/(V-1)); the loss is (1 - ε)(-log p_y) + ε · mean_j(-log p_j), with a stable log-softmax.",
            non_finite_hint="your loss is not finite for logits in the hundreds: every -log p_j is needed, and "
                            "log(softmax(z)) gives -inf for the unlikely ones. Use the max-subtracted log-softmax.",
        ),
        FunctionItem(
            name="cross_entropy_gradient", points=2, reference=cross_entropy_gradient,
            public=(Case(lambda: _logits(3, 4, 48)), Case(_large)),
            rtol=1e-6, atol=1e-9,
            hint="softmax(z) minus the one-hot target, row by row, for the summed loss (do not divide by N); "
                 "compute softmax with the max subtracted (torch.softmax does).",
            non_finite_hint="your gradient has NaN for logits in the hundreds: exp(1000) is inf and inf / inf is "
                            "NaN. Subtract each row's largest logit before exponentiating.",
        ),
        FunctionItem(
            name="token_mean_loss", points=2, reference=token_mean_loss,
            public=(Case(lambda: _padded([4, 2], 5, 50)),),
            rtol=1e-6, atol=1e-9,
            hint="add the losses of the real tokens only and divide by the number of real tokens "
                 "(mask.sum()), not by B·T and not per sequence.",
        ),
        FunctionItem(
            name="sequence_losses", points=2, reference=sequence_losses,
            public=(Case(lambda: _padded([4, 2], 5, 54)), Case(lambda: _padded([3, 3, 1], 4, 55))),
            rtol=1e-6, atol=1e-9,
            hint="one number per sequence: add the losses of its real tokens (a sum, not a mean: -log Pr(x) of a "
                 "sequence is the sum of its token losses), leaving the padding out; return a tensor of shape (B,).",
        ),
        FunctionItem(
            name="log_likelihood_from_losses", points=1, reference=log_likelihood_from_losses,
            public=(Case(([0.7, 0.4], [True, True])),
                    Case(([1.3, 0.2, 0.9, 0.7, 0.4], [False, False, False, True, True]))),
            rtol=1e-6, atol=1e-9,
            hint="a token's loss is -log Pr(token | everything before it): log Pr(y | x) is minus the sum "
                 "of the losses at the response positions only.",
        ),
        FunctionItem(
            name="loss_floor_and_gap", points=1, reference=loss_floor_and_gap,
            public=(Case(([0.5, 0.25, 0.25], [0.25, 0.25, 0.5])),
                    Case(([0.0, 0.5, 0.5], [0.2, 0.3, 0.5]))),  # a token the data never shows: 0 · log 0 = 0
            rtol=1e-6, atol=1e-9,
            hint="H(p) = -Σ p log p and KL(p ‖ q) = Σ p log(p / q) = CE(p, q) - H(p), in nats, with 0 · log 0 = 0; "
                 "return them as a tuple (H, KL).",
            non_finite_hint="a token with p_j = 0 gives 0 · log 0, which floating point makes NaN; it counts as 0 "
                            "(torch.special.xlogy).",
        ),
    ),
    notes={"lesson": "notebooks/04_cross_entropy.ipynb"},
)
