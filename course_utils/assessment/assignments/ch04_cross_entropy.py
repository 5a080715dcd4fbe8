"""Chapter 04 assignment: cross-entropy loss is negative log-likelihood."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ... import losses
from ...information import entropy, kl_divergence
from ..items import AnswerItem, Assignment, Case, FunctionItem, Mistake


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


def loss_floor_and_gap(p_data, q_model) -> tuple[float, float]:
    """(H(p), KL(p ‖ q)) in nats: the lowest expected loss any model can reach, and this model's excess over it."""
    return entropy(p_data), kl_divergence(p_data, q_model)


# ---------------------------------------------------------------- the mistakes each item must reject

def _naive_log_probs(z: torch.Tensor) -> torch.Tensor:
    e = torch.exp(z)
    return torch.log(e / e.sum(dim=-1, keepdim=True))


def _log_of_softmax(z: torch.Tensor) -> torch.Tensor:
    return torch.log(torch.softmax(z, dim=-1))


def _target(log_p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return log_p.gather(-1, y.unsqueeze(-1)).squeeze(-1)


def _smoothed(z, y, eps, log_p=None, others=False, total=False) -> float:
    log_p = torch.log_softmax(z, -1) if log_p is None else log_p
    v = z.shape[-1]
    if others:  # 1 - ε on the target, ε / (V - 1) on every other token
        q = torch.full_like(z, eps / (v - 1)).scatter_(1, y[:, None], 1 - eps)
        return float(-(q * log_p).sum(-1).mean())
    spread = log_p.sum(-1) if total else log_p.mean(-1)
    return float(((1 - eps) * -_target(log_p, y) - eps * spread).mean())


def _per_token(z, y) -> torch.Tensor:
    return -_target(torch.log_softmax(z, -1), y)


def _pq(p, q) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.as_tensor(p, dtype=torch.float64), torch.as_tensor(q, dtype=torch.float64)


def _floor_gap(p, q, naive=False, base=math.e, sign=1.0, floor_is_ce=False) -> tuple[float, float]:
    p, q = _pq(p, q)
    plogp = p * torch.log(p) if naive else torch.special.xlogy(p, p)
    h, ce = -plogp.sum(), -torch.special.xlogy(p, q).sum()
    kl = sign * (ce - h)
    return float((ce if floor_is_ce else h) / math.log(base)), float(kl / math.log(base))


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
                    Case(lambda: _logits(5, 4, 41)),
                    Case(_large)),  # log(softmax) gives inf here, the literal formula NaN
            hidden=(Case(lambda: _logits(64, 10, 42, scale=30.0)),
                    Case(lambda: _logits(1, 2, 43)),
                    Case(lambda: (torch.full((3, 5), 7.0, dtype=torch.float64), torch.tensor([0, 4, 2])))),
            rtol=1e-6, atol=1e-9,
            hint="subtract each row's largest logit m before exponentiating: log Σ exp(z) = m + log Σ "
                 "exp(z - m); then the loss is logsumexp(z) - z_target, averaged over rows.",
            non_finite_hint="your loss is not finite for logits in the hundreds: exp(1000) overflows to inf and "
                            "a probability of e^-2000 underflows to 0, whose log is -inf. Subtract each row's "
                            "largest logit before exponentiating.",
            mistakes=(
                Mistake("exp(z) / Σ exp(z), then the log", lambda z, y: float(-_target(_naive_log_probs(z), y).mean()),
                        pitfall=True),
                Mistake("log of softmax", lambda z, y: float(-_target(_log_of_softmax(z), y).mean()), pitfall=True),
                Mistake("sum over the rows, not the mean", lambda z, y: float(_per_token(z, y).sum())),
                Mistake("drops the max it subtracted", lambda z, y: float((torch.log(torch.exp(
                    z - z.max(-1, keepdim=True).values).sum(-1)) - _target(z, y)).mean())),
            ),
        ),
        AnswerItem(
            name="ANSWER_IDENTICAL_CURVES", points=1, expected="C", choices=("A", "B", "C", "D"),
            hint="write out -Σ_j q_j log p_j for a one-hot q and see which terms survive.",
            why_not=(("A", "the two values are equal at every step, not only at the end: they are the same "
                           "function of the model's outputs."),
                     ("B", "with a one-hot target the cross-entropy is not a bound on the negative log-likelihood: "
                           "it is exactly that value."),
                     ("D", "optimizers change parameters; they do not rescale the values a loss reports.")),
        ),
        AnswerItem(
            name="ANSWER_LABEL_REPRESENTATION", points=1, expected=False, choices=(True, False),
            hint="expand the cross-entropy to a smoothed target (1 - ε) onehot + ε/V: is it still -log p_target?",
            why_not=((True, "with a smoothed target every token's -log p_j enters the loss, so it is no longer "
                            "the target's negative log-likelihood alone."),),
        ),
        FunctionItem(
            name="smoothed_cross_entropy", points=2, reference=smoothed_cross_entropy,
            public=(Case((torch.tensor([[2.0, 1.0, 0.1]], dtype=torch.float64), torch.tensor([0]), 0.1)),
                    Case(lambda: _logits(6, 5, 44) + (0.2,)),
                    Case(lambda: _large() + (0.1,))),  # stability matters for every -log p_j
            hidden=(Case(lambda: _logits(8, 7, 45) + (0.0,)),  # no smoothing: plain cross-entropy
                    Case(lambda: _logits(8, 3, 46) + (0.5,)),
                    Case(lambda: _logits(4, 2, 47) + (0.9,))),
            rtol=1e-6, atol=1e-9,
            hint="the target puts 1 - ε + ε/V on the true token and ε/V on every token (ε/V, not "
                 "ε/(V-1)); the loss is (1 - ε)(-log p_y) + ε · mean_j(-log p_j), with a stable log-softmax.",
            non_finite_hint="your loss is not finite for logits in the hundreds: every -log p_j is needed, and "
                            "log(softmax(z)) gives -inf for the unlikely ones. Use the max-subtracted log-softmax.",
            mistakes=(
                Mistake("log of softmax", lambda z, y, e: _smoothed(z, y, e, _log_of_softmax(z)), pitfall=True),
                Mistake("ε / (V - 1) on the other tokens", lambda z, y, e: _smoothed(z, y, e, others=True)),
                Mistake("forgets the smoothing", lambda z, y, e: float(_per_token(z, y).mean())),
                Mistake("ε times the sum over tokens, not the mean", lambda z, y, e: _smoothed(z, y, e, total=True)),
            ),
        ),
        FunctionItem(
            name="cross_entropy_gradient", points=2, reference=cross_entropy_gradient,
            public=(Case(lambda: _logits(3, 4, 48)), Case(_large)),
            hidden=(Case(lambda: _logits(10, 6, 49, scale=5.0)),
                    Case((torch.zeros(2, 4, dtype=torch.float64), torch.tensor([1, 3])))),
            rtol=1e-6, atol=1e-9,
            hint="softmax(z) minus the one-hot target, row by row, for the summed loss (do not divide by N); "
                 "compute softmax with the max subtracted (torch.softmax does).",
            non_finite_hint="your gradient has NaN for logits in the hundreds: exp(1000) is inf and inf / inf is "
                            "NaN. Subtract each row's largest logit before exponentiating.",
            mistakes=(
                Mistake("softmax without subtracting the max", lambda z, y: torch.exp(z) / torch.exp(z).sum(
                    -1, keepdim=True) - F.one_hot(y, z.shape[-1]), pitfall=True),
                Mistake("gradient of the mean loss (divided by N)", lambda z, y: (
                    torch.softmax(z, -1) - F.one_hot(y, z.shape[-1])) / len(y)),
                Mistake("wrong sign", lambda z, y: F.one_hot(y, z.shape[-1]) - torch.softmax(z, -1)),
            ),
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
            mistakes=(
                Mistake("counts the padding", lambda z, y, m: float(_per_token(z, y).mean()), pitfall=True),
                Mistake("mean of the per-sequence means", lambda z, y, m: float(
                    ((_per_token(z, y) * m).sum(1) / m.sum(1)).mean())),
                Mistake("divides by B·T", lambda z, y, m: float((_per_token(z, y) * m).sum() / m.numel())),
            ),
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
            mistakes=(
                Mistake("includes the prompt's tokens", lambda t, m: -float(sum(float(v) for v in t)), pitfall=True),
                Mistake("forgets the minus sign", lambda t, m: float(
                    torch.as_tensor(t, dtype=torch.float64)[torch.as_tensor(m, dtype=torch.bool)].sum())),
                Mistake("mean instead of sum", lambda t, m: -float(
                    torch.as_tensor(t, dtype=torch.float64)[torch.as_tensor(m, dtype=torch.bool)].mean())),
            ),
        ),
        FunctionItem(
            name="loss_floor_and_gap", points=1, reference=loss_floor_and_gap,
            public=(Case(([0.5, 0.25, 0.25], [0.25, 0.25, 0.5])),
                    Case(([0.0, 0.5, 0.5], [0.2, 0.3, 0.5]))),  # a token the data never shows: 0 · log 0 = 0
            hidden=(Case(([0.7, 0.2, 0.1], [0.7, 0.2, 0.1])),  # the model is the data: no gap
                    Case(([1.0, 0.0, 0.0, 0.0], [0.97, 0.01, 0.01, 0.01])),
                    Case(([0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]))),
            rtol=1e-6, atol=1e-9,
            hint="H(p) = -Σ p log p and KL(p ‖ q) = Σ p log(p / q) = CE(p, q) - H(p), in nats, with 0 · log 0 = 0; "
                 "return them as a tuple (H, KL).",
            non_finite_hint="a token with p_j = 0 gives 0 · log 0, which floating point makes NaN; it counts as 0 "
                            "(torch.special.xlogy).",
            mistakes=(
                Mistake("0 · log 0 left as NaN", lambda p, q: _floor_gap(p, q, naive=True), pitfall=True),
                Mistake("the floor is the cross-entropy", lambda p, q: _floor_gap(p, q, floor_is_ce=True)),
                Mistake("the gap as H - CE (wrong sign)", lambda p, q: _floor_gap(p, q, sign=-1.0)),
                Mistake("bits instead of nats", lambda p, q: _floor_gap(p, q, base=2.0)),
            ),
        ),
    ),
    notes={"lesson": "notebooks/04_cross_entropy.ipynb"},
)
