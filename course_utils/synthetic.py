"""A synthetic language with a known entropy rate: the floor no model's cross-entropy can beat."""

from __future__ import annotations

import bisect
import string

import torch

from .validate import index, int_at_least, positive_int, token_ids

_ALPHABET = string.ascii_lowercase + string.ascii_uppercase + string.digits


_MAX_CONTEXTS = 4096


class SyntheticLanguage:
    """A random sparse Markov source whose entropy rate is computed exactly.

    Each context (the previous `order` tokens) allows only a few next tokens, with random
    probabilities. The source is stationary: sampled text starts from the stationary
    distribution of contexts, so every position has the same statistics and the mean
    negative log-probability of sampled text converges to `entropy_rate()`.

        lang = SyntheticLanguage.random(vocab_size=12, order=1, branching=3, seed=0)
        tokens = lang.sample(10_000, generator)          # one stream, int64 ids
        batch = lang.sample_sequences(64, 128, generator)  # independent sequences
        lang.entropy_rate()                              # H in nats/token, exact
        lang.cross_entropy_rate(log_q)                   # a model's exact CE = H + KL

    Attributes: `vocab_size`, `order`, `transition` (shape (V,)*(order+1)), `conditional`
    (the same as a (V**order, V) matrix), `stationary` (over contexts), `alphabet` (display letters).
    """

    def __init__(self, transition: torch.Tensor) -> None:
        t = torch.as_tensor(transition, dtype=torch.float64)
        if t.ndim < 2 or len(set(t.shape)) != 1:
            raise ValueError(f"transition must have shape (V, ..., V) with order + 1 equal sizes, got {tuple(t.shape)}")
        vocab, order = t.shape[0], t.ndim - 1
        if vocab < 2 or vocab > len(_ALPHABET):
            raise ValueError(f"vocabulary size must be between 2 and {len(_ALPHABET)}, got {vocab}")
        if vocab**order > _MAX_CONTEXTS:
            raise ValueError(f"{vocab}**{order} contexts exceed the limit of {_MAX_CONTEXTS}")
        flat = t.reshape(-1, vocab)
        if not torch.isfinite(flat).all() or (flat < 0).any():
            raise ValueError("transition probabilities must be finite and non-negative")
        if not torch.allclose(flat.sum(1), torch.ones(len(flat), dtype=torch.float64), atol=1e-9):
            raise ValueError("every row of the transition table must sum to 1")
        self.vocab_size, self.order = vocab, order
        self.transition = t
        self.conditional = flat  # (V**order, V): row c is Pr(next token | context c)
        self.stationary = _stationary(flat, vocab, order)  # (V**order,) over contexts
        self.alphabet = _ALPHABET[:vocab]

    @classmethod
    def random(cls, vocab_size: int = 12, order: int = 1, branching: int = 3, seed: int = 0) -> SyntheticLanguage:
        """A source where each context allows `branching` next tokens with Dirichlet(1) probabilities.

        One allowed successor of a context ending in token a is always a + 1 (mod V): this
        makes every context lead back to one cycle, so the stationary distribution is unique.
        """
        vocab_size, order = int_at_least(vocab_size, "vocab_size", 2), positive_int(order, "order")
        branching, seed = positive_int(branching, "branching"), int_at_least(seed, "seed", 0)
        if branching > vocab_size:
            raise ValueError(f"branching ({branching}) cannot exceed vocab_size ({vocab_size})")
        g = torch.Generator().manual_seed(seed)
        n_ctx = vocab_size**order
        table = torch.zeros(n_ctx, vocab_size, dtype=torch.float64)
        for c in range(n_ctx):
            forced = (c % vocab_size + 1) % vocab_size
            others = [int(i) for i in torch.randperm(vocab_size, generator=g) if int(i) != forced]
            allowed = torch.tensor([forced] + others[: branching - 1])
            weights = -torch.log1p(-torch.rand(branching, generator=g, dtype=torch.float64))
            table[c, allowed] = weights / weights.sum()
        return cls(table.reshape((vocab_size,) * (order + 1)))

    # ---- exact quantities

    def entropy_rate(self) -> float:
        """H = Σ_c π(c) H(Pr(· | c)) in nats per token: the best achievable mean log-loss."""
        row_entropy = -torch.special.xlogy(self.conditional, self.conditional).sum(1)
        return float(self.stationary @ row_entropy)

    def token_distribution(self) -> torch.Tensor:
        """The stationary probability of each token (the frequency of tokens in long samples)."""
        return self.stationary @ self.conditional

    def cross_entropy_rate(self, log_q: torch.Tensor) -> float:
        """Expected log-loss (nats/token) of a model that predicts from the last j ≤ order tokens.

        `log_q` has shape (V,)*j + (V,): log q(next | last j tokens); j = 0 is a unigram model.
        The result is H + KL rate ≥ H, with equality only when q matches the source.
        """
        lq = torch.as_tensor(log_q, dtype=torch.float64)
        v = self.vocab_size
        j = lq.ndim - 1
        if lq.ndim < 1 or any(s != v for s in lq.shape) or j > self.order:
            raise ValueError(f"log_q must have shape (V,)*j + (V,) with V = {v} and j <= {self.order}, "
                             f"got {tuple(lq.shape)}")
        rows = lq.reshape(-1, v)[torch.arange(v**self.order) % (v**j)]  # each context's last j tokens
        zero = torch.zeros((), dtype=torch.float64)
        terms = torch.where(self.conditional > 0, -self.conditional * rows, zero).sum(1)
        return float(torch.where(self.stationary > 0, self.stationary * terms, zero).sum())

    def optimal_log_probs(self, context: int) -> torch.Tensor:
        """log Pr(next | last `context` tokens) under the source: the best model with that context.

        Shape (V,)*context + (V,). `cross_entropy_rate` of it is the lowest loss any model that
        sees only `context` tokens can reach; it equals `entropy_rate()` for context = order.
        Contexts the source never produces get a uniform row.
        """
        context = index(context, self.order + 1, "context", "an integer")
        v = self.vocab_size
        joint = (self.stationary[:, None] * self.conditional).reshape(v ** (self.order - context), -1).sum(0)
        joint = joint.reshape(-1, v)  # (V**context, V): Pr(last context tokens, next)
        total = joint.sum(1, keepdim=True)
        probs = torch.where(total > 0, joint / total.clamp_min(1e-300), torch.full_like(joint, 1.0 / v))
        return torch.log(probs).reshape((v,) * (context + 1))

    def conditional_log_probs(self, tokens: torch.Tensor) -> torch.Tensor:
        """log Pr(x_t | previous `order` tokens) for t = order … n-1 (length n - order)."""
        x = self._check_tokens(tokens)
        if x.shape[-1] <= self.order:
            raise ValueError(f"need more than order = {self.order} tokens, got {x.shape[-1]}")
        ctx = torch.zeros(x.shape[:-1] + (x.shape[-1] - self.order,), dtype=torch.long)
        for k in range(self.order):
            ctx = ctx * self.vocab_size + x[..., k: x.shape[-1] - self.order + k]
        return torch.log(self.conditional[ctx, x[..., self.order:]])

    # ---- sampling

    def sample(self, n_tokens: int, generator: torch.Generator) -> torch.Tensor:
        """One stationary stream of `n_tokens` token ids (int64)."""
        n_tokens = int_at_least(n_tokens, "n_tokens", self.order)
        v, n_ctx = self.vocab_size, self.vocab_size**self.order
        ctx = int(torch.multinomial(self.stationary, 1, generator=generator))
        out = [(ctx // v**(self.order - 1 - k)) % v for k in range(self.order)]
        cum = torch.cumsum(self.conditional, 1)
        cum[:, -1] = 1.0
        cum_rows = cum.tolist()
        u = torch.rand(max(n_tokens - self.order, 0), generator=generator, dtype=torch.float64).tolist()
        for r in u:
            x = bisect.bisect_right(cum_rows[ctx], r)
            out.append(x)
            ctx = (ctx * v + x) % n_ctx
        return torch.tensor(out[:n_tokens], dtype=torch.long)

    def sample_sequences(self, n_sequences: int, length: int, generator: torch.Generator) -> torch.Tensor:
        """`n_sequences` independent stationary sequences, shape (n_sequences, length), int64."""
        n_sequences, length = positive_int(n_sequences, "n_sequences"), int_at_least(length, "length", self.order)
        v, n_ctx = self.vocab_size, self.vocab_size**self.order
        ctx = torch.multinomial(self.stationary, n_sequences, replacement=True, generator=generator)
        cols = [(ctx // v**(self.order - 1 - k)) % v for k in range(self.order)]
        cum = torch.cumsum(self.conditional, 1)
        cum[:, -1] = 1.0
        for _ in range(length - self.order):
            u = torch.rand(n_sequences, 1, generator=generator, dtype=torch.float64)
            x = torch.searchsorted(cum[ctx], u, right=True).squeeze(1).clamp_(max=v - 1)
            cols.append(x)
            ctx = (ctx * v + x) % n_ctx
        return torch.stack(cols[:length], dim=1)

    def text(self, tokens: torch.Tensor) -> str:
        """Token ids as letters of `alphabet`, for display."""
        return "".join(self.alphabet[i] for i in self._check_tokens(tokens).reshape(-1).tolist())

    def _check_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        return token_ids(torch.as_tensor(tokens), self.vocab_size)

    def __repr__(self) -> str:
        return (f"SyntheticLanguage(vocab_size={self.vocab_size}, order={self.order}, "
                f"entropy_rate={self.entropy_rate():.4f} nats/token)")


def _stationary(conditional: torch.Tensor, vocab: int, order: int) -> torch.Tensor:
    """The unique stationary distribution over contexts; a clear error if it is not unique."""
    n_ctx = vocab**order
    ctx = torch.arange(n_ctx)
    # move[c, x]: the context after emitting x from context c
    move = (ctx[:, None] * vocab + torch.arange(vocab)[None, :]) % n_ctx
    chain = torch.zeros(n_ctx, n_ctx, dtype=torch.float64)
    chain.index_put_((ctx[:, None].expand(-1, vocab), move), conditional, accumulate=True)
    # A context that the chain keeps visiting (found by iterating from the uniform distribution)
    # must be reachable from every context, or there are several recurrent classes.
    mass = torch.full((n_ctx,), 1.0 / n_ctx, dtype=torch.float64)
    flat_move = move.reshape(-1)
    for _ in range(256):
        mass = torch.zeros_like(mass).index_add_(0, flat_move, (mass[:, None] * conditional).reshape(-1))
    anchor = int(torch.argmax(mass))
    edges = chain > 0
    recurrent = _closure(edges, anchor)  # contexts reachable from the anchor
    if not bool(_closure(edges.T, anchor).all()):
        raise ValueError("some contexts cannot reach the others: the stationary distribution is not unique")
    idx = recurrent.nonzero().squeeze(1)
    sub = chain[idx][:, idx]
    a = sub.T - torch.eye(len(idx), dtype=torch.float64)
    a[-1] = 1.0
    b = torch.zeros(len(idx), dtype=torch.float64)
    b[-1] = 1.0
    pi = torch.zeros(n_ctx, dtype=torch.float64)
    pi[idx] = torch.linalg.solve(a, b).clamp_min(0)
    return pi / pi.sum()


def _closure(edges: torch.Tensor, start: int) -> torch.Tensor:
    """Boolean mask of the nodes reachable from `start` along `edges[from, to]`."""
    seen = torch.zeros(len(edges), dtype=torch.bool)
    seen[start] = True
    frontier = seen.clone()
    while frontier.any():
        nxt = edges[frontier].any(0) & ~seen
        seen |= nxt
        frontier = nxt
    return seen
