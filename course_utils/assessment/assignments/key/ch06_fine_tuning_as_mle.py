"""Instructor key for chapter 06: hidden cases, expected answers, and the mistakes each item must reject."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ....validate import as_tensor
from ...items import AnswerKey, Case, FunctionKey, Mistake
from ..ch06_fine_tuning_as_mle import _actor_case, _comparisons, _dialogue_case, _fit_case, _nll_case


def _ll_case(rewards: list[float], n: int, seed: int, shift: float = 0.0) -> tuple:
    r = as_tensor(rewards, "rewards") + shift
    return (r.tolist(), *(t.tolist() for t in _comparisons(rewards, n, seed)))


def _token_log_probs(logits, tokens, naive=False, shift=True) -> torch.Tensor:
    """log Pr(token t) from row t − 1 (or, without the shift, from row t) for t ≥ 1."""
    z = logits[:-1] if shift else logits[1:]
    lp = torch.log(torch.softmax(z.double(), -1)) if naive else torch.log_softmax(z.double(), -1)
    return lp.gather(1, tokens[1:, None]).squeeze(1)


def _nll(logits, tokens, prompt_len, naive=False, shift=True, from_token=1, mean=False) -> float:
    lp = _token_log_probs(logits, tokens, naive, shift)
    keep = torch.arange(1, len(tokens)) >= max(int(prompt_len), from_token)
    return float(-(lp[keep].mean() if mean else lp[keep].sum()))


def _turns(logits, tokens, owner, shift=True, mean=False) -> torch.Tensor:
    lp = _token_log_probs(logits, tokens, shift=shift)
    o = owner[1:]
    parts = [lp[o == k] for k in range(int(owner.max()) + 1)]
    return torch.stack([p.mean() if mean else p.sum() for p in parts])


def _bt(rewards, winners, losers, naive=False, swap=False, mean=False) -> float:
    r = torch.as_tensor(rewards, dtype=torch.float64)
    w, lo = torch.as_tensor(winners), torch.as_tensor(losers)
    d = r[lo] - r[w] if swap else r[w] - r[lo]
    terms = torch.log(torch.sigmoid(d)) if naive else F.logsigmoid(d)
    return float(terms.mean() if mean else terms.sum())


def _fit(n_items, winners, losers, centre=True, anchor=False, swap=False, steps=500) -> torch.Tensor:
    w, lo = torch.as_tensor(winners), torch.as_tensor(losers)
    if swap:
        w, lo = lo, w
    r = torch.zeros(int(n_items), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([r], lr=0.1)
    for _ in range(steps):
        loss = -F.logsigmoid(r[w] - r[lo]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    r = r.detach()
    if anchor:
        return r - r[0]
    return r - r.mean() if centre else r


def _pg(logits, utilities, baseline=True, weight=True, sign=1.0) -> torch.Tensor:
    z, u = torch.as_tensor(logits, dtype=torch.float64), torch.as_tensor(utilities, dtype=torch.float64)
    pi = torch.softmax(z, 0)
    centred = u - pi @ u if baseline else u
    return sign * (pi * centred if weight else centred)


def _actor(logits, actions, returns, values, detach=True, sign=-1.0, reduce="mean", baseline=True) -> tuple:
    """A variant of the actor loss and its gradients (logits, values); the defaults are the right answer."""
    z = logits.clone().requires_grad_(True)
    v = values.clone().requires_grad_(True)
    log_pi = torch.log_softmax(z, -1).gather(1, actions[:, None]).squeeze(1)
    advantage = returns - v if baseline else returns
    weighted = log_pi * (advantage.detach() if detach else advantage)
    loss = sign * (weighted.mean() if reduce == "mean" else weighted.sum())
    loss.backward()
    return loss.detach(), z.grad, v.grad if v.grad is not None else torch.zeros_like(v)


KEY = {
    "response_loss_mask": FunctionKey(
        hidden=(Case((5, 6)), Case((2, 10)), Case((7, 9)), Case((4, 12))),
        mistakes=(
            Mistake("off by one: marks targets from index prompt_len", lambda p, n: torch.arange(n - 1) >= p,
                    pitfall=True),
            Mistake("one entry per token, not per target", lambda p, n: torch.arange(n) >= p),
            Mistake("integers, not booleans", lambda p, n: (torch.arange(1, n) >= p).long()),
            Mistake("masks the response instead of the prompt", lambda p, n: torch.arange(1, n) < p),
        ),
    ),
    "response_nll": FunctionKey(
        hidden=(Case(lambda: _nll_case(10, 7, 1, 62)),  # a one-token prompt
                Case(lambda: _nll_case(9, 4, 8, 63)),  # a one-token response
                Case(lambda: _nll_case(30, 11, 12, 64)),
                # wrong by 800 nats per token (e^-800 underflows in float64), in a longer sequence
                Case(lambda: (torch.tensor([[0.0, 800.0, 5.0], [800.0, 0.0, 1.0], [3.0, 2.0, 900.0],
                                            [0.0, 0.0, 0.0]], dtype=torch.float64),
                              torch.tensor([1, 0, 1, 0]), 2))),
        mistakes=(
            Mistake("log of softmax (even in float64)", lambda z, x, p: _nll(z, x, p, naive=True), pitfall=True),
            Mistake("no shift: row t scores token t", lambda z, x, p: _nll(z, x, p, shift=False)),
            Mistake("counts the prompt's tokens too", lambda z, x, p: _nll(z, x, 1)),
            Mistake("mean instead of sum", lambda z, x, p: _nll(z, x, p, mean=True)),
        ),
    ),
    "ANSWER_PROMPT_MASK": AnswerKey(
        expected="B",
        why_not=(("A", "prompt tokens are not predicted perfectly; their loss is usually large, "
                       "which is why counting it would change what the model learns."),
                 ("C", "the forward pass still runs over the prompt: the response is conditioned on it."),
                 ("D", "the loss mask changes which positions are scored, not what the model attends to.")),
    ),
    "assistant_turn_log_probs": FunctionKey(
        hidden=(Case(lambda: _dialogue_case([(1, 1)], 5, 72)),
                Case(lambda: _dialogue_case([(3, 4), (2, 1), (5, 3), (1, 2)], 9, 73)),
                Case(lambda: _dialogue_case([(4, 6), (4, 6), (4, 6)], 13, 74))),
        mistakes=(
            Mistake("no shift: row t scores token t", lambda z, x, o: _turns(z, x, o, shift=False), pitfall=True),
            Mistake("mean per turn instead of sum", lambda z, x, o: _turns(z, x, o, mean=True)),
        ),
    ),
    "ANSWER_ONE_PASS": AnswerKey(
        expected="A",
        why_not=(("B", "the log of a product being a sum explains why per-token terms add up, not why later tokens "
                       "leave turn 2's predictions unchanged."),
                 ("C", "the turns of a dialogue depend on each other: later turns condition on earlier ones."),
                 ("D", "the loss mask only chooses which positions are scored; the forward pass still reads "
                       "every token.")),
    ),
    "bradley_terry_log_likelihood": FunctionKey(
        hidden=(Case(lambda: _ll_case([0.0, 0.5, -1.0, 2.0], 50, 81)),
                Case(lambda: _ll_case([0.0, 0.5, -1.0, 2.0], 50, 81, shift=10.0)),
                Case(([5.0, -900.0, 0.0], [1, 2, 0], [0, 0, 2])),
                Case(lambda: _ll_case([1.0, -1.0], 7, 82))),
        mistakes=(
            Mistake("log of sigmoid", lambda r, w, lo: _bt(r, w, lo, naive=True), pitfall=True),
            Mistake("winners and losers swapped", lambda r, w, lo: _bt(r, w, lo, swap=True)),
            Mistake("mean instead of sum", lambda r, w, lo: _bt(r, w, lo, mean=True)),
        ),
    ),
    "fit_rewards": FunctionKey(
        hidden=(Case(lambda: _fit_case([0.0, 1.0, -1.0], 300, 91)),
                Case(lambda: _fit_case([0.5, 0.0, 2.0, -1.0], 600, 92)),
                Case(lambda: _fit_case([0.0, 0.0], 100, 93))),
        mistakes=(
            Mistake("not centred (Adam moves the mean)", lambda n, w, lo: _fit(n, w, lo, centre=False),
                    pitfall=True),
            Mistake("the first reward fixed at 0 instead of mean 0", lambda n, w, lo: _fit(n, w, lo, anchor=True)),
            Mistake("winners and losers swapped", lambda n, w, lo: _fit(n, w, lo, swap=True)),
            Mistake("stops after 20 steps", lambda n, w, lo: _fit(n, w, lo, steps=20)),
        ),
    ),
    "ANSWER_SHIFT": AnswerKey(
        expected="B",
        why_not=(("A", "the likelihood depends on reward differences r_i - r_j only, and those do not change."),
                 ("C", "σ(r_i + 5 - (r_j + 5)) = σ(r_i - r_j): no factor appears."),
                 ("D", "shifted rewards give exactly the same likelihood, so they are maximisers too.")),
    ),
    "policy_gradient": FunctionKey(
        hidden=(Case(([3.0, 0.0, 0.0, -2.0], [0.0, 0.0, 0.0, 1.0])),
                Case(([1.0, 1.0, 1.0], [5.0, 5.0, 5.0])),  # equal utilities: no gradient
                Case(([0.1, 2.0, -0.3, 0.7, 1.1], [-1.0, 0.5, 2.0, 0.0, 1.5]))),
        mistakes=(
            Mistake("forgets to subtract E_π[U]", lambda z, u: _pg(z, u, baseline=False), pitfall=True),
            Mistake("the gradient of the loss (wrong sign)", lambda z, u: _pg(z, u, sign=-1.0)),
            Mistake("forgets the factor π_k", lambda z, u: _pg(z, u, weight=False)),
        ),
    ),
    "actor_loss_and_gradients": FunctionKey(
        hidden=(Case(lambda: _actor_case(1, 2, 102)),  # a batch of one
                Case(lambda: _actor_case(16, 7, 103)),
                Case(lambda: _actor_case(5, 4, 104, critic="exact")),  # a perfect critic: every advantage is 0
                Case(lambda: _actor_case(6, 3, 105, critic="zero"))),  # no critic yet: the advantage is the return
        mistakes=(
            Mistake("advantages not detached: the actor's loss trains the critic", lambda *a: _actor(*a, detach=False),
                    pitfall=True),
            Mistake("sign flipped: the surrogate itself, not the loss", lambda *a: _actor(*a, sign=1.0)),
            Mistake("sum over the batch instead of the mean", lambda *a: _actor(*a, reduce="sum")),
            Mistake("the return instead of the advantage (no baseline)", lambda *a: _actor(*a, baseline=False)),
        ),
    ),
    "ANSWER_PG_SCALE": AnswerKey(
        expected="B",
        why_not=(("A", "the policy gradient is π(y*) (onehot(y*) - π): the MLE gradient scaled "
                       "down, not equal to it."),
                 ("C", "dividing by π(y*) would undo the scaling; the policy gradient carries a factor π(y*)."),
                 ("D", "no logarithm appears: E_π[U] = π(y*), and its gradient is π(y*) times the MLE gradient.")),
    ),
    "ANSWER_BIGGER_GAIN": AnswerKey(
        expected="A",
        why_not=(("B", "log 0.9 - log 0.8 ≈ 0.118, less than log 0.2 - log 0.1 ≈ 0.693."),
                 ("C", "the objective adds log-probabilities, so what counts is the ratio of the change, not "
                       "its difference.")),
    ),
}
