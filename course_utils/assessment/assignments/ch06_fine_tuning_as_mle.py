"""Chapter 06 assignment: fine-tuning, dialogue training and reward models are maximum likelihood too."""

from __future__ import annotations

import torch

from ...finetune import response_loss_mask
from ...preferences import (
    actor_loss,
    bradley_terry_log_likelihood,
    fit_bradley_terry,
    policy_gradient,
    sample_comparisons,
)
from ..items import AnswerItem, Assignment, Case, FunctionItem


def _logits_and_tokens(logits, tokens) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.as_tensor(logits, dtype=torch.float64)
    x = torch.as_tensor(tokens, dtype=torch.long)
    if x.ndim != 1 or z.ndim != 2 or z.shape[0] != x.shape[0]:
        raise ValueError(f"logits must have shape (T, V) and tokens (T,), got {tuple(z.shape)} and {tuple(x.shape)}")
    return z, x


def _next_token_log_probs(z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log Pr(tokens[t] | tokens[<t]) for t ≥ 1: row t − 1 of the log-softmax at column tokens[t]."""
    return torch.log_softmax(z[:-1], -1).gather(1, x[1:, None]).squeeze(1)


def response_nll(logits, tokens, prompt_len: int) -> float:
    """−log Pr(y | x) = −Σ_{t ≥ prompt_len} log softmax(logits[t − 1])[tokens[t]] for one sequence."""
    z, x = _logits_and_tokens(logits, tokens)
    mask = response_loss_mask(int(prompt_len), len(x))
    lp = _next_token_log_probs(z, x)
    return float(-(lp * mask).sum())


def assistant_turn_log_probs(logits, tokens, turn_of_token) -> torch.Tensor:
    """Per assistant turn k, Σ log Pr(token | all earlier tokens) over the tokens with turn_of_token == k."""
    z, x = _logits_and_tokens(logits, tokens)
    owner = torch.as_tensor(turn_of_token, dtype=torch.long)
    if owner.shape != x.shape or int(owner[0]) != -1 or int(owner.max()) < 0:
        raise ValueError("turn_of_token needs one entry per token, −1 for the first token, and some turn")
    lp = _next_token_log_probs(z, x)
    keep = owner[1:] >= 0
    return torch.zeros(int(owner.max()) + 1, dtype=torch.float64).index_add_(0, owner[1:][keep], lp[keep])


def fit_rewards(n_items: int, winners, losers) -> torch.Tensor:
    """Maximum-likelihood Bradley–Terry rewards with mean zero."""
    return fit_bradley_terry(n_items, winners, losers)[0]


def actor_loss_and_gradients(logits, actions, returns, values) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The actor loss −mean_n log π(a_n | s_n) (R_n − V(s_n)), advantages detached, and its gradients
    with respect to the logits and to the critic's values (zeros: the actor's loss does not train the critic)."""
    z = torch.as_tensor(logits, dtype=torch.float64).clone().requires_grad_(True)
    v = torch.as_tensor(values, dtype=torch.float64).clone().requires_grad_(True)
    loss = actor_loss(z, torch.as_tensor(actions), torch.as_tensor(returns, dtype=torch.float64), v)
    loss.backward()
    grad_v = v.grad if v.grad is not None else torch.zeros_like(v)
    return loss.detach(), z.grad, grad_v


def _actor_case(n: int, k: int, seed: int, critic: str = "noisy") -> tuple:
    """(logits (N, K), actions, returns, values): the critic's values near the returns, equal to them, or 0."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g, dtype=torch.float64)
    actions = torch.randint(k, (n,), generator=g)
    returns = 1.0 + torch.randn(n, generator=g, dtype=torch.float64)
    noise = 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    values = {"noisy": returns + noise, "exact": returns.clone(), "zero": torch.zeros(n, dtype=torch.float64)}[critic]
    return logits, actions, returns, values


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


# confidently wrong by 1000 nats per token: e^-1000 is 0 even in float64, so log(softmax) gives -inf
_HUGE_GAPS = (torch.tensor([[0.0, 1000.0], [1000.0, 0.0], [0.0, 0.0]], dtype=torch.float64), torch.tensor([0, 0, 1]), 1)


PUBLIC = Assignment(
    key="06_fine_tuning_as_mle",
    title="Fine-tuning and alignment as maximum likelihood",
    items=(
        FunctionItem(
            name="response_loss_mask", points=2, reference=response_loss_mask,
            public=(Case((3, 5)), Case((1, 4))),
            hint="target t is token t + 1: it is a response token when t + 1 >= prompt_len; "
                 "return a bool tensor with total_len - 1 entries.",
        ),
        FunctionItem(
            name="response_nll", points=2, reference=response_nll,
            public=(Case(lambda: _nll_case(6, 5, 3, 61)), Case(_HUGE_GAPS)),
            rtol=1e-6, atol=1e-6,
            hint="the logits in row t − 1 predict token t; add −log_softmax over the response tokens "
                 "t = prompt_len … T − 1 only; the last row predicts past the end and is not used.",
            non_finite_hint="your loss is infinite for logits 1000 apart: e^-1000 is 0 even in float64, so "
                            "log(softmax(...)) gives -inf. Use torch.log_softmax.",
        ),
        AnswerItem(
            name="ANSWER_PROMPT_MASK", points=1, choices=("A", "B", "C", "D"),
            hint="write the objective of supervised fine-tuning: which probability is maximised?",
        ),
        FunctionItem(
            name="assistant_turn_log_probs", points=3, reference=assistant_turn_log_probs,
            public=(Case(lambda: _dialogue_case([(2, 2), (3, 2)], 6, 71)),),
            rtol=1e-6, atol=1e-6,
            hint="compute log_softmax once for the whole dialogue; token t (t >= 1) is predicted by "
                 "row t − 1; then add each token's log-probability to its assistant turn.",
        ),
        AnswerItem(
            name="ANSWER_ONE_PASS", points=1, choices=("A", "B", "C", "D"),
            hint="what can position t of a decoder see?",
        ),
        FunctionItem(
            name="bradley_terry_log_likelihood", points=2, reference=bradley_terry_log_likelihood,
            public=(Case(([0.0, 1.0, 3.0], [1, 2, 0], [0, 1, 2])),
                    Case(([0.0, 800.0], [0], [1]))),  # log σ(−800) = −800, not −inf
            rtol=1e-6, atol=1e-6,
            hint="add log σ(r[winner] − r[loser]) over the comparisons; use a stable log-sigmoid "
                 "(torch.nn.functional.logsigmoid), not log(sigmoid(·)).",
            non_finite_hint="your answer is -inf for a reward gap of 800: σ(-800) rounds to 0 and log 0 = -inf. "
                            "Use torch.nn.functional.logsigmoid.",
        ),
        FunctionItem(
            name="fit_rewards", points=2, reference=fit_rewards,
            # Adam from zero does not keep the mean at 0 here: an uncentred answer is off by about 0.44
            public=(Case(lambda: _fit_case([2.0, 0.0, -0.5, 0.5], 300, 91)),),
            rtol=0.0, atol=2e-3,
            hint="maximise the Bradley–Terry log-likelihood by gradient ascent (e.g. Adam, lr 0.1, "
                 "500 steps) over a float64 reward vector, then subtract its mean.",
        ),
        AnswerItem(
            name="ANSWER_SHIFT", points=1, choices=("A", "B", "C", "D"),
            hint="the model only ever uses differences of rewards.",
        ),
        FunctionItem(
            name="policy_gradient", points=2, reference=policy_gradient,
            public=(Case(([0.0, 0.0], [1.0, 0.0])), Case(([0.2, -1.0, 0.5], [1.0, 0.0, 2.0]))),
            rtol=1e-6, atol=1e-9,
            hint="∂/∂z_k Σ_y π(y) U(y) = π_k (U_k − Σ_y π(y) U(y)); check it against autograd.",
        ),
        FunctionItem(
            name="actor_loss_and_gradients", points=3, reference=actor_loss_and_gradients,
            public=(Case(lambda: _actor_case(4, 3, 101)),),
            rtol=1e-6, atol=1e-9,
            hint="log π(a_n | s_n) is log_softmax of row n at column a_n; the advantage R_n − V(s_n) must be "
                 "detached (a constant for the actor), and the loss is minus the batch mean of log π · advantage; "
                 "the gradient reaching the values must then be zero.",
        ),
        AnswerItem(
            name="ANSWER_PG_SCALE", points=1, choices=("A", "B", "C", "D"),
            hint="compare π ⊙ (U − E_π[U]) with onehot(y*) − π when U is 1 at y* and 0 elsewhere.",
       ),
        AnswerItem(
            name="ANSWER_BIGGER_GAIN", points=1, choices=("A", "B", "C"),
            hint="the objective is a sum of log-probabilities: compare log 0.2 − log 0.1 with log 0.9 − log 0.8.",
        ),
    ),
    # the solution took 8–16 s alone on a busy 2-core machine (a Transformer in its last cell)
    notes={"lesson": "notebooks/06_fine_tuning_as_mle.ipynb", "grading_timeout_s": 90},
)
