"""Supervised fine-tuning as conditional MLE: instruction pairs, response-only loss masks, dialogues.

A *model* here is any causal language model given as a callable: a (B, T) tensor of token ids
maps to (B, T, V) logits, where position t may depend only on tokens 0..t. Position t's logits
predict token t + 1, so a sequence of T tokens has T - 1 *targets*; every mask in this module is
indexed by target (length T - 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from .losses import IGNORE_INDEX
from .runtime import model_device
from .text import CharTokenizer
from .train import BatchSource, History, TrainConfig, train
from .validate import int_at_least, positive_int

Model = Callable[[torch.Tensor], torch.Tensor]


TASKS = {"copy": "C", "reverse": "R", "sort": "S"}


ALPHABET = "abcdef"


SEP, END, PAD = "=", ".", "#"


USER, ASSISTANT = "U", "A"


def instruction_tokenizer(alphabet: str = ALPHABET) -> CharTokenizer:
    """Characters of the instruction tasks: padding, markers, task codes, roles and the alphabet."""
    if not alphabet or not set(alphabet) <= set("abcdefghijklmnopqrstuvwxyz"):
        raise ValueError(f"alphabet must be non-empty lowercase letters, got {alphabet!r}")
    specials = PAD + END + SEP + "".join(TASKS.values()) + USER + ASSISTANT
    return CharTokenizer(tuple(specials + "".join(sorted(set(alphabet)))))


def solve(task: str, text: str) -> str:
    """The correct response to an instruction: the text copied, reversed or sorted."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    if task == "copy":
        return text
    if task == "reverse":
        return text[::-1]
    return "".join(sorted(text))


def make_pairs(n: int, generator: torch.Generator, tasks: Sequence[str] = tuple(TASKS),
               min_len: int = 2, max_len: int = 5, alphabet: str = ALPHABET) -> list[tuple[str, str]]:
    """`n` random (prompt, response) pairs such as ('Rabc=', 'cba.'), drawn with `generator`.

    The prompt is a task code (C copy, R reverse, S sort), a random string and '='; the response
    is the solved string and the end marker '.'.
    """
    positive_int(n, "n")
    unknown = [t for t in tasks if t not in TASKS]
    if not tasks or unknown:
        raise ValueError(f"tasks must be a non-empty selection of {', '.join(TASKS)}, got {list(tasks)}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len} and {max_len}")
    instruction_tokenizer(alphabet)  # validates the alphabet
    pairs = []
    for _ in range(n):
        task = tasks[int(torch.randint(len(tasks), (), generator=generator))]
        length = int(torch.randint(min_len, max_len + 1, (), generator=generator))
        letters = torch.randint(len(alphabet), (length,), generator=generator).tolist()
        text = "".join(alphabet[i] for i in letters)
        pairs.append((TASKS[task] + text + SEP, solve(task, text) + END))
    return pairs


def response_loss_mask(prompt_len: int, total_len: int) -> torch.Tensor:
    """Which targets of a prompt+response sequence are response tokens (bool, length total_len - 1).

    Target t is token t + 1; it belongs to the response when t + 1 >= prompt_len.
    """
    int_at_least(prompt_len, "prompt_len", 1)
    int_at_least(total_len, "total_len", 2)
    if not 1 <= prompt_len < total_len:
        raise ValueError(f"need 1 <= prompt_len < total_len (a non-empty prompt and response), "
                         f"got prompt_len={prompt_len}, total_len={total_len}")
    return torch.arange(1, total_len) >= prompt_len


def encode_pair(tokenizer: CharTokenizer, prompt: str, response: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of prompt + response and the response-only loss mask over its targets."""
    if not prompt or not response:
        raise ValueError("a pair needs a non-empty prompt and a non-empty response")
    tokens = tokenizer.encode(prompt + response)
    return tokens, response_loss_mask(len(prompt), len(tokens))


def batch_pairs(tokenizer: CharTokenizer, pairs: Sequence[tuple[str, str]],
                response_only: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs, targets, mask), each (B, T - 1), right-padded; the mask is False on padding.

    With `response_only=False` the mask also covers the prompt's targets (plain language
    modelling of the whole sequence), for comparison.
    """
    if len(pairs) == 0:
        raise ValueError("no pairs to batch")
    encoded = [encode_pair(tokenizer, p, r) for p, r in pairs]
    width = max(len(t) for t, _ in encoded)
    pad = tokenizer.encode(PAD)[0]
    tokens = torch.full((len(encoded), width), int(pad), dtype=torch.long)
    mask = torch.zeros(len(encoded), width - 1, dtype=torch.bool)
    for i, (t, m) in enumerate(encoded):
        tokens[i, : len(t)] = t
        mask[i, : len(m)] = m if response_only else True
    return tokens[:, :-1], tokens[:, 1:], mask


def target_log_probs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log Pr(target) at every position: log-softmax of the logits gathered at the targets."""
    if logits.ndim != targets.ndim + 1 or logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits must have shape targets.shape + (V,), got {tuple(logits.shape)} "
                         f"and {tuple(targets.shape)}")
    return torch.log_softmax(logits.float(), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def masked_nll(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
               reduction: str = "mean") -> torch.Tensor:
    """−Σ log Pr(target) over masked positions ('sum'), or that divided by their number ('mean')."""
    _check_mask(mask, targets)
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    count = int(mask.sum())
    if count == 0:
        raise ValueError("the mask selects no position: there is nothing to learn from")
    total = -(target_log_probs(logits, targets) * mask).sum()
    return total / count if reduction == "mean" else total


def _check_mask(mask: torch.Tensor, targets: torch.Tensor) -> None:
    if mask.shape != targets.shape or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor of shape {tuple(targets.shape)}, "
                         f"got {mask.dtype} {tuple(mask.shape)}")


def conditional_log_probs(model: Model, tokenizer: CharTokenizer,
                          pairs: Sequence[tuple[str, str]]) -> torch.Tensor:
    """log Pr(y | x) for each (x, y) pair (float64, shape (N,)), from one batched forward pass."""
    inputs, targets, mask = batch_pairs(tokenizer, pairs)
    dev = model_device(model)
    with torch.no_grad():
        lp = target_log_probs(model(inputs.to(dev)), targets.to(dev)).double().cpu()
    return (lp * mask).sum(-1)


def ignore_outside(targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`targets` with every position outside `mask` set to `IGNORE_INDEX` (−100), which the loss skips."""
    _check_mask(mask, targets)
    return targets.masked_fill(~mask, IGNORE_INDEX)


def pair_batches(tokenizer: CharTokenizer, pairs: Sequence[tuple[str, str]], batch_size: int,
                 response_only: bool = True) -> BatchSource:
    """The batch source of supervised fine-tuning, for `train`: `batch_size` random pairs per batch.

    `source(generator)` returns (inputs, targets); targets outside the loss mask (the prompt, unless
    `response_only=False`, and padding) are `IGNORE_INDEX`, so the mean loss is the masked NLL.
    """
    if len(pairs) == 0:
        raise ValueError("no pairs to draw batches from")
    positive_int(batch_size, "batch_size")

    def draw(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(pairs), (batch_size,), generator=generator).tolist()
        inputs, targets, mask = batch_pairs(tokenizer, [pairs[i] for i in idx], response_only)
        return inputs, ignore_outside(targets, mask)

    return draw


@dataclass
class SFTHistory(History):
    """A fine-tuning run: the loop's `History` (its `val_loss` is the held-out NLL per response token)
    and, before training and at each validation, the held-out mean log Pr(y | x) and accuracy."""

    eval_steps: list[int] = field(default_factory=list)  # 0, then the validation steps
    heldout_log_prob: list[float] = field(default_factory=list)  # mean over held-out pairs (nats)
    accuracy: list[float] = field(default_factory=list)  # exact match of greedy responses


def train_sft(model: torch.nn.Module, tokenizer: CharTokenizer, train_pairs: Sequence[tuple[str, str]],
              heldout_pairs: Sequence[tuple[str, str]], config: TrainConfig,
              response_only: bool = True) -> SFTHistory:
    """Fine-tune by maximising Σ log Pr(y | x) over random batches of pairs, with the course's `train`.

    The training loop, optimizer (AdamW, no decay on biases and norms), schedule (warm-up, cosine),
    precision and checkpoints are chapter 05's, set by `config`; only the batches differ (see
    `pair_batches`). The held-out pairs are scored before training, every `config.eval_every` steps
    and at the end.
    """
    if len(train_pairs) == 0 or len(heldout_pairs) == 0:
        raise ValueError("fine-tuning needs some training pairs and some held-out pairs")
    log_probs: list[float] = []
    accuracy: list[float] = []
    response_tokens = sum(len(response) for _, response in heldout_pairs)  # the targets that count

    def validate(m: torch.nn.Module) -> float:
        """Records the held-out mean log Pr(y | x) and accuracy; returns the NLL per response token."""
        lp = conditional_log_probs(m, tokenizer, heldout_pairs)
        log_probs.append(float(lp.mean()))
        accuracy.append(task_accuracy(m, tokenizer, heldout_pairs))
        return float(-lp.sum() / response_tokens)

    was_training = model.training
    model.eval()
    validate(model)  # step 0: the model before fine-tuning
    model.train(was_training)
    run = train(model, pair_batches(tokenizer, train_pairs, config.batch_size, response_only), validate, config)
    return SFTHistory(**asdict(run), eval_steps=[0, *run.val_steps], heldout_log_prob=log_probs,
                      accuracy=accuracy)


def greedy_responses(model: Model, tokenizer: CharTokenizer, prompts: Sequence[str],
                     max_new: int = 12) -> list[str]:
    """Each prompt's response by greedy decoding, up to and including the end marker '.'.

    Prompts of equal length are decoded together in one batch.
    """
    positive_int(max_new, "max_new")
    end = int(tokenizer.encode(END)[0])
    out: dict[int, str] = {}
    by_length: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        if not p:
            raise ValueError("prompts must be non-empty")
        by_length.setdefault(len(p), []).append(i)
    with torch.no_grad():
        dev = model_device(model)
        for idx in by_length.values():
            x = torch.stack([tokenizer.encode(prompts[i]) for i in idx]).to(dev)
            done = torch.zeros(len(idx), dtype=torch.bool, device=dev)
            new = []
            for _ in range(max_new):
                nxt = model(x)[:, -1].argmax(-1)
                new.append(nxt)
                done |= nxt == end
                x = torch.cat([x, nxt[:, None]], 1)
                if done.all():
                    break
            gen = torch.stack(new, 1).cpu()
            for row, i in enumerate(idx):
                text = tokenizer.decode(gen[row])
                out[i] = text[: text.index(END) + 1] if END in text else text
    return [out[i] for i in range(len(prompts))]


def task_accuracy(model: Model, tokenizer: CharTokenizer, pairs: Sequence[tuple[str, str]]) -> float:
    """The fraction of pairs whose greedy response matches the correct one exactly."""
    if len(pairs) == 0:
        raise ValueError("no pairs to evaluate")
    got = greedy_responses(model, tokenizer, [p for p, _ in pairs],
                           max_new=max(len(r) for _, r in pairs) + 1)
    return sum(g == r for g, (_, r) in zip(got, pairs, strict=True)) / len(pairs)


def make_dialogue(n_turns: int, generator: torch.Generator, **pair_options) -> list[tuple[str, str]]:
    """A dialogue of `n_turns` exchanges: [(USER, 'Rab'), (ASSISTANT, 'ba'), …], from `make_pairs`."""
    positive_int(n_turns, "n_turns")
    turns = []
    for prompt, response in make_pairs(n_turns, generator, **pair_options):
        turns += [(USER, prompt[:-1]), (ASSISTANT, response[:-1])]
    return turns


def encode_dialogue(tokenizer: CharTokenizer, turns: Sequence[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of a dialogue and, per target, the index of the assistant turn it belongs to (−1: none).

    Each turn is written as its role marker, its text and '.'. The role marker is the template,
    given rather than predicted; an assistant turn's text and its '.' are the targets it owns.
    """
    if len(turns) == 0:
        raise ValueError("a dialogue needs at least one turn")
    pieces, owner, k = [], [], 0
    for role, text in turns:
        if role not in (USER, ASSISTANT):
            raise ValueError(f"a turn's role must be {USER!r} (user) or {ASSISTANT!r} (assistant), got {role!r}")
        if not text or END in text or any(c in text for c in (USER, ASSISTANT, PAD)):
            raise ValueError(f"a turn's text must be non-empty and free of markers, got {text!r}")
        pieces.append(role + text + END)
        owner += [-1] + ([k] if role == ASSISTANT else [-1]) * (len(text) + 1)
        k += role == ASSISTANT
    if k == 0:
        raise ValueError("the dialogue has no assistant turn")
    tokens = tokenizer.encode("".join(pieces))
    return tokens, torch.tensor(owner[1:], dtype=torch.long)


def _n_turns(turn_index: torch.Tensor, length: int) -> int:
    if turn_index.ndim != 1 or turn_index.numel() != length - 1:
        raise ValueError(f"turn_index must have one entry per target ({length - 1}), got shape "
                         f"{tuple(turn_index.shape)}")
    if (turn_index < -1).any() or not (turn_index >= 0).any():
        raise ValueError("turn_index must hold −1 or assistant turn numbers, with at least one turn")
    return int(turn_index.max()) + 1


def turn_log_probs_one_pass(model: Model, tokens: torch.Tensor, turn_index: torch.Tensor) -> torch.Tensor:
    """log Pr(turn k | everything before it) for every assistant turn k, from ONE forward pass."""
    n = _n_turns(turn_index, len(tokens))
    x = tokens.to(model_device(model))
    with torch.no_grad():
        lp = target_log_probs(model(x[None, :-1])[0], x[1:]).double().cpu()
    keep = turn_index >= 0
    return torch.zeros(n, dtype=torch.float64).index_add_(0, turn_index[keep], lp[keep])


def turn_log_probs_per_turn(model: Model, tokens: torch.Tensor, turn_index: torch.Tensor) -> torch.Tensor:
    """The same quantities with one forward pass per assistant turn, over the dialogue up to that turn."""
    n = _n_turns(turn_index, len(tokens))
    out = torch.zeros(n, dtype=torch.float64)
    x = tokens.to(model_device(model))
    with torch.no_grad():
        for k in range(n):
            where = (turn_index == k).nonzero().squeeze(1)
            last = int(where.max()) + 1  # the turn's last target is token `last`
            lp = target_log_probs(model(x[None, :last])[0], x[1: last + 1]).double().cpu()
            out[k] = lp[where].sum()
    return out


def flat_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The same mean masked loss written with `F.cross_entropy` and `ignore_index=IGNORE_INDEX` (−100)."""
    t = ignore_outside(targets, mask)
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), t.reshape(-1), ignore_index=IGNORE_INDEX)
