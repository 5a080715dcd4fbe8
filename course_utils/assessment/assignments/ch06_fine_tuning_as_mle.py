"""Chapter 06 assignment: fine-tuning, dialogue training and reward models are maximum likelihood too."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...finetune import response_loss_mask
from ...preferences import (
    bradley_terry_log_likelihood,
    fit_bradley_terry,
    policy_gradient,
    sample_comparisons,
)
from ...validate import as_tensor
from ..items import AnswerItem, Assignment, Case, FunctionItem, Mistake


def _logits_and_tokens(logits, tokens) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.as_tensor(logits, dtype=torch.float64)
    x = torch.as_tensor(tokens, dtype=torch.long)
    if x.ndim != 1 or z.ndim != 2 or z.shape[0] != x.shape[0]:
        raise ValueError(f"logits must have shape (T, V) and tokens (T,), got {tuple(z.shape)} and {tuple(x.shape)}")
    return z, x


def response_nll(logits, tokens, prompt_len: int) -> float:
    """−log Pr(y | x) = −Σ_{t ≥ prompt_len} log softmax(logits[t − 1])[tokens[t]] for one sequence."""
    z, x = _logits_and_tokens(logits, tokens)
    mask = response_loss_mask(int(prompt_len), len(x))
    lp = torch.log_softmax(z[:-1], -1).gather(1, x[1:, None]).squeeze(1)
    return float(-(lp * mask).sum())


def assistant_turn_log_probs(logits, tokens, turn_of_token) -> torch.Tensor:
    """Per assistant turn k, Σ log Pr(token | all earlier tokens) over the tokens with turn_of_token == k."""
    z, x = _logits_and_tokens(logits, tokens)
    owner = torch.as_tensor(turn_of_token, dtype=torch.long)
    if owner.shape != x.shape or int(owner[0]) != -1 or int(owner.max()) < 0:
        raise ValueError("turn_of_token needs one entry per token, −1 for the first token, and some turn")
    lp = torch.log_softmax(z[:-1], -1).gather(1, x[1:, None]).squeeze(1)
    keep = owner[1:] >= 0
    return torch.zeros(int(owner.max()) + 1, dtype=torch.float64).index_add_(0, owner[1:][keep], lp[keep])


def fit_rewards(n_items: int, winners, losers) -> torch.Tensor:
    """Maximum-likelihood Bradley–Terry rewards with mean zero."""
    return fit_bradley_terry(n_items, winners, losers)[0]


def _sequence(length: int, vocab: int, seed: int, scale: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(length, vocab, generator=g, dtype=torch.float64),
            torch.randint(vocab, (length,), generator=g))


def _nll_case(length: int, vocab: int, prompt_len: int, seed: int) -> tuple:
    return (*_sequence(length, vocab, seed), prompt_len)


def _dialogue_case(turn_lengths: list[tuple[int, int]], vocab: int, seed: int) -> tuple:
    """(logits, tokens, turn_of_token) for user/assistant turns of the given lengths."""
    owner, k = [-1], 0  # a first template token
    for user, assistant in turn_lengths:
        owner += [-1] * user + [k] * assistant
        k += assistant > 0
    logits, tokens = _sequence(len(owner), vocab, seed)
    return logits, tokens, torch.tensor(owner)


def _comparisons(rewards: list[float], n: int, seed: int) -> tuple:
    w, lo = sample_comparisons(torch.tensor(rewards, dtype=torch.float64), n, torch.Generator().manual_seed(seed))
    return w, lo


def _fit_case(rewards: list[float], n: int, seed: int) -> tuple:
    return (len(rewards), *_comparisons(rewards, n, seed))


def _ll_case(rewards: list[float], n: int, seed: int, shift: float = 0.0) -> tuple:
    r = as_tensor(rewards, "rewards") + shift
    return (r.tolist(), *(t.tolist() for t in _comparisons(rewards, n, seed)))


# confidently wrong by 1000 nats per token: e^-1000 is 0 even in float64, so log(softmax) gives -inf
_HUGE_GAPS = (torch.tensor([[0.0, 1000.0], [1000.0, 0.0], [0.0, 0.0]], dtype=torch.float64), torch.tensor([0, 0, 1]), 1)


# ---------------------------------------------------------------- the mistakes each item must reject

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


ASSIGNMENT = Assignment(
    key="06_fine_tuning_as_mle",
    title="Fine-tuning and alignment as maximum likelihood",
    items=(
        FunctionItem(
            name="response_loss_mask", points=2, reference=response_loss_mask,
            public=(Case((3, 5)), Case((1, 4))),
            hidden=(Case((5, 6)), Case((2, 10)), Case((7, 9)), Case((4, 12))),
            hint="target t is token t + 1: it is a response token when t + 1 >= prompt_len; "
                 "return a bool tensor with total_len - 1 entries.",
            mistakes=(
                Mistake("off by one: marks targets from index prompt_len", lambda p, n: torch.arange(n - 1) >= p,
                        pitfall=True),
                Mistake("one entry per token, not per target", lambda p, n: torch.arange(n) >= p),
                Mistake("integers, not booleans", lambda p, n: (torch.arange(1, n) >= p).long()),
                Mistake("masks the response instead of the prompt", lambda p, n: torch.arange(1, n) < p),
            ),
        ),
        FunctionItem(
            name="response_nll", points=2, reference=response_nll,
            public=(Case(lambda: _nll_case(6, 5, 3, 61)), Case(_HUGE_GAPS)),
            hidden=(Case(lambda: _nll_case(10, 7, 1, 62)),  # a one-token prompt
                    Case(lambda: _nll_case(9, 4, 8, 63)),  # a one-token response
                    Case(lambda: _nll_case(30, 11, 12, 64)),
                    # wrong by 800 nats per token (e^-800 underflows in float64), in a longer sequence
                    Case(lambda: (torch.tensor([[0.0, 800.0, 5.0], [800.0, 0.0, 1.0], [3.0, 2.0, 900.0],
                                                [0.0, 0.0, 0.0]], dtype=torch.float64),
                                  torch.tensor([1, 0, 1, 0]), 2))),
            rtol=1e-6, atol=1e-6,
            hint="the logits in row t − 1 predict token t; add −log_softmax over the response tokens "
                 "t = prompt_len … T − 1 only; the last row predicts past the end and is not used.",
            non_finite_hint="your loss is infinite for logits 1000 apart: e^-1000 is 0 even in float64, so "
                            "log(softmax(...)) gives -inf. Use torch.log_softmax.",
            mistakes=(
                Mistake("log of softmax (even in float64)", lambda z, x, p: _nll(z, x, p, naive=True), pitfall=True),
                Mistake("no shift: row t scores token t", lambda z, x, p: _nll(z, x, p, shift=False)),
                Mistake("counts the prompt's tokens too", lambda z, x, p: _nll(z, x, 1)),
                Mistake("mean instead of sum", lambda z, x, p: _nll(z, x, p, mean=True)),
            ),
        ),
        AnswerItem(
            name="ANSWER_PROMPT_MASK", points=1, expected="B", choices=("A", "B", "C", "D"),
            hint="write the objective of supervised fine-tuning: which probability is maximised?",
            why_not=(("A", "prompt tokens are not predicted perfectly; their loss is usually large, "
                           "which is why counting it would change what the model learns."),
                     ("C", "the forward pass still runs over the prompt: the response is conditioned on it."),
                     ("D", "the loss mask changes which positions are scored, not what the model attends to.")),
        ),
        FunctionItem(
            name="assistant_turn_log_probs", points=3, reference=assistant_turn_log_probs,
            public=(Case(lambda: _dialogue_case([(2, 2), (3, 2)], 6, 71)),),
            hidden=(Case(lambda: _dialogue_case([(1, 1)], 5, 72)),
                    Case(lambda: _dialogue_case([(3, 4), (2, 1), (5, 3), (1, 2)], 9, 73)),
                    Case(lambda: _dialogue_case([(4, 6), (4, 6), (4, 6)], 13, 74))),
            rtol=1e-6, atol=1e-6,
            hint="compute log_softmax once for the whole dialogue; token t (t >= 1) is predicted by "
                 "row t − 1; then add each token's log-probability to its assistant turn.",
            mistakes=(
                Mistake("no shift: row t scores token t", lambda z, x, o: _turns(z, x, o, shift=False), pitfall=True),
                Mistake("mean per turn instead of sum", lambda z, x, o: _turns(z, x, o, mean=True)),
            ),
        ),
        AnswerItem(
            name="ANSWER_ONE_PASS", points=1, expected="A", choices=("A", "B", "C", "D"),
            hint="what can position t of a decoder see?",
            why_not=(("B", "the log of a product being a sum explains why per-token terms add up, not why later tokens "
                           "leave turn 2's predictions unchanged."),
                     ("C", "the turns of a dialogue depend on each other: later turns condition on earlier ones."),
                     ("D", "the loss mask only chooses which positions are scored; the forward pass still reads "
                           "every token.")),
        ),
        FunctionItem(
            name="bradley_terry_log_likelihood", points=2, reference=bradley_terry_log_likelihood,
            public=(Case(([0.0, 1.0, 3.0], [1, 2, 0], [0, 1, 2])),
                    Case(([0.0, 800.0], [0], [1]))),  # log σ(−800) = −800, not −inf
            hidden=(Case(lambda: _ll_case([0.0, 0.5, -1.0, 2.0], 50, 81)),
                    Case(lambda: _ll_case([0.0, 0.5, -1.0, 2.0], 50, 81, shift=10.0)),
                    Case(([5.0, -900.0, 0.0], [1, 2, 0], [0, 0, 2])),
                    Case(lambda: _ll_case([1.0, -1.0], 7, 82))),
            rtol=1e-6, atol=1e-6,
            hint="add log σ(r[winner] − r[loser]) over the comparisons; use a stable log-sigmoid "
                 "(torch.nn.functional.logsigmoid), not log(sigmoid(·)).",
            non_finite_hint="your answer is -inf for a reward gap of 800: σ(-800) rounds to 0 and log 0 = -inf. "
                            "Use torch.nn.functional.logsigmoid.",
            mistakes=(
                Mistake("log of sigmoid", lambda r, w, lo: _bt(r, w, lo, naive=True), pitfall=True),
                Mistake("winners and losers swapped", lambda r, w, lo: _bt(r, w, lo, swap=True)),
                Mistake("mean instead of sum", lambda r, w, lo: _bt(r, w, lo, mean=True)),
            ),
        ),
        FunctionItem(
            name="fit_rewards", points=2, reference=fit_rewards,
            # Adam from zero does not keep the mean at 0 here: an uncentred answer is off by about 0.44
            public=(Case(lambda: _fit_case([2.0, 0.0, -0.5, 0.5], 300, 91)),),
            hidden=(Case(lambda: _fit_case([0.0, 1.0, -1.0], 300, 91)),
                    Case(lambda: _fit_case([0.5, 0.0, 2.0, -1.0], 600, 92)),
                    Case(lambda: _fit_case([0.0, 0.0], 100, 93))),
            rtol=0.0, atol=2e-3,
            hint="maximise the Bradley–Terry log-likelihood by gradient ascent (e.g. Adam, lr 0.1, "
                 "500 steps) over a float64 reward vector, then subtract its mean.",
            mistakes=(
                Mistake("not centred (Adam moves the mean)", lambda n, w, lo: _fit(n, w, lo, centre=False),
                        pitfall=True),
                Mistake("the first reward fixed at 0 instead of mean 0", lambda n, w, lo: _fit(n, w, lo, anchor=True)),
                Mistake("winners and losers swapped", lambda n, w, lo: _fit(n, w, lo, swap=True)),
                Mistake("stops after 20 steps", lambda n, w, lo: _fit(n, w, lo, steps=20)),
            ),
        ),
        AnswerItem(
            name="ANSWER_SHIFT", points=1, expected="B", choices=("A", "B", "C", "D"),
            hint="the model only ever uses differences of rewards.",
            why_not=(("A", "the likelihood depends on reward differences r_i - r_j only, and those do not change."),
                     ("C", "σ(r_i + 5 - (r_j + 5)) = σ(r_i - r_j): no factor appears."),
                     ("D", "shifted rewards give exactly the same likelihood, so they are maximisers too.")),
        ),
        FunctionItem(
            name="policy_gradient", points=2, reference=policy_gradient,
            public=(Case(([0.0, 0.0], [1.0, 0.0])), Case(([0.2, -1.0, 0.5], [1.0, 0.0, 2.0]))),
            hidden=(Case(([3.0, 0.0, 0.0, -2.0], [0.0, 0.0, 0.0, 1.0])),
                    Case(([1.0, 1.0, 1.0], [5.0, 5.0, 5.0])),  # equal utilities: no gradient
                    Case(([0.1, 2.0, -0.3, 0.7, 1.1], [-1.0, 0.5, 2.0, 0.0, 1.5]))),
            rtol=1e-6, atol=1e-9,
            hint="∂/∂z_k Σ_y π(y) U(y) = π_k (U_k − Σ_y π(y) U(y)); check it against autograd.",
            mistakes=(
                Mistake("forgets to subtract E_π[U]", lambda z, u: _pg(z, u, baseline=False), pitfall=True),
                Mistake("the gradient of the loss (wrong sign)", lambda z, u: _pg(z, u, sign=-1.0)),
                Mistake("forgets the factor π_k", lambda z, u: _pg(z, u, weight=False)),
            ),
        ),
        AnswerItem(
            name="ANSWER_PG_SCALE", points=1, expected="B", choices=("A", "B", "C", "D"),
            hint="compare π ⊙ (U − E_π[U]) with onehot(y*) − π when U is 1 at y* and 0 elsewhere.",
            why_not=(("A", "the policy gradient is π(y*) (onehot(y*) - π): the MLE gradient scaled "
                           "down, not equal to it."),
                     ("C", "dividing by π(y*) would undo the scaling; the policy gradient carries a factor π(y*)."),
                     ("D", "no logarithm appears: E_π[U] = π(y*), and its gradient is π(y*) times the MLE gradient.")),
        ),
        AnswerItem(
            name="ANSWER_BIGGER_GAIN", points=1, expected="A", choices=("A", "B", "C"),
            hint="the objective is a sum of log-probabilities: compare log 0.2 − log 0.1 with log 0.9 − log 0.8.",
            why_not=(("B", "log 0.9 - log 0.8 ≈ 0.118, less than log 0.2 - log 0.1 ≈ 0.693."),
                     ("C", "the objective adds log-probabilities, so what counts is the ratio of the change, not "
                           "its difference.")),
        ),
    ),
    # the solution took 8–16 s alone on a busy 2-core machine (a Transformer in its last cell)
    notes={"lesson": "notebooks/06_fine_tuning_as_mle.ipynb", "grading_timeout_s": 90},
)
