"""A small decoder-only Transformer (causal, or bidirectional by a flag), its size and its FLOPs per token."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .losses import IGNORE_INDEX
from .runtime import model_device
from .validate import number_in, positive_int


@dataclass(frozen=True)
class TransformerConfig:
    """The shape of a Transformer: vocabulary, context length, depth, heads, width, dropout, masking."""

    vocab_size: int
    context: int = 64
    n_layers: int = 4
    n_heads: int = 4
    d_model: int = 128
    d_ff: int | None = None  # width of the feed-forward layer; None means 4 × d_model
    dropout: float = 0.0
    causal: bool = True  # False: every position sees every other one (chapter 03's masked LM)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context", "n_layers", "n_heads", "d_model"):
            positive_int(getattr(self, name), name)
        if self.d_ff is not None:  # None: 4 × d_model
            positive_int(self.d_ff, "d_ff")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        number_in(self.dropout, "dropout", 0.0, 1.0, include_high=False)
        if not isinstance(self.causal, bool):
            raise ValueError(f"causal must be True or False, got {self.causal!r}")

    @property
    def ff_width(self) -> int:
        return self.d_ff if self.d_ff is not None else 4 * self.d_model

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


class SelfAttention(nn.Module):
    """Multi-head self-attention through `F.scaled_dot_product_attention`; causal when the config says so."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.n_heads, self.causal, self.dropout = config.n_heads, config.causal, config.dropout
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        # (b, t, 3c) → three tensors of shape (b, heads, t, head_dim)
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, c // self.n_heads).permute(2, 0, 3, 1, 4)
        if q.device.type == "cpu" and q.dtype == torch.bfloat16:
            # PyTorch's CPU attention kernel is several times slower backwards in bf16 than in float32.
            with torch.autocast("cpu", enabled=False):
                y = self._attend(q.float(), k.float(), v.float())
        else:
            y = self._attend(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(
            q, k, v, is_causal=self.causal, dropout_p=self.dropout if self.training else 0.0
        )


class FeedForward(nn.Module):
    """Position-wise two-layer network with a GELU between the layers."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.d_model, config.ff_width)
        self.proj = nn.Linear(config.ff_width, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    """A pre-norm block: x + attention(norm(x)), then x + feed-forward(norm(x))."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.d_model)
        self.attn = SelfAttention(config)
        self.norm2 = nn.LayerNorm(config.d_model)
        self.ff = FeedForward(config)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.drop(self.ff(self.norm2(x)))


def next_token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean NLL (nats per token, in float32) of `targets` (B, T) under `logits` (B, T, V), leaving out
    targets equal to `losses.IGNORE_INDEX`: the loss of `Transformer.loss` and of the training loop."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX)


class Transformer(nn.Module):
    """Token + position embeddings, pre-norm blocks, a final norm and an output layer tied to the embedding."""

    def __init__(
        self, config: TransformerConfig, seed: int = 0, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise ValueError(f"config must be a TransformerConfig, got {type(config).__name__}")
        self.config = config
        # Building layers draws from the global generator; keep it untouched and initialise below.
        with torch.random.fork_rng(devices=[]):
            self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
            self.pos_emb = nn.Embedding(config.context, config.d_model)
            self.drop = nn.Dropout(config.dropout)
            self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
            self.norm = nn.LayerNorm(config.d_model)
            self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # weight tying: one matrix embeds and un-embeds
        self.reset_parameters(generator if generator is not None else torch.Generator().manual_seed(seed))

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """GPT-2 initialisation from `generator`: N(0, 0.02²), residual outputs scaled by 1/√(2·layers)."""
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layers)
        for name, p in self.named_parameters():
            if p.ndim == 1:  # biases and norm shifts 0, norm scales 1
                p.fill_(1.0 if name.endswith("weight") else 0.0)
                continue
            std = residual_std if name.endswith("proj.weight") else 0.02
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * std)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, time, vocab) for token ids of shape (batch, time)."""
        if idx.ndim != 2:
            raise ValueError(f"token ids must have shape (batch, time), got {tuple(idx.shape)}")
        t = idx.shape[1]
        if t > self.config.context:
            raise ValueError(f"a sequence of {t} tokens is longer than the model's context of {self.config.context}")
        h = self.drop(self.tok_emb(idx) + self.pos_emb.weight[:t])
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean next-token negative log-likelihood (nats per token) of `targets` given `idx`.

        Targets equal to `losses.IGNORE_INDEX` (prompt tokens, padding) are left out of the mean.
        """
        return next_token_nll(self(idx), targets)

    def n_params(self, embeddings: bool = True) -> int:
        """Number of parameters (the tied matrix counted once); without embeddings if asked."""
        n = sum(p.numel() for p in self.parameters())
        if not embeddings:
            n -= self.tok_emb.weight.numel() + self.pos_emb.weight.numel()
        return n

    def flops_per_token(self, training: bool = True) -> float:
        """Estimated FLOPs per token at full context (see `flops_per_token`)."""
        return flops_per_token(self.config, training=training)

    @torch.no_grad()
    def generate(
        self, idx: torch.Tensor, n_new: int, generator: torch.Generator, temperature: float = 1.0
    ) -> torch.Tensor:
        """Extend `idx` (batch, time) by `n_new` tokens sampled at `temperature` (0 means greedy)."""
        if not self.config.causal:
            raise ValueError("generation needs a causal model; this one sees future tokens")
        from .sequences import temperature_distribution  # the course's one temperature function
        from .validate import non_negative_float

        temperature = non_negative_float(temperature, "temperature")
        idx = idx.to(model_device(self))  # a prompt from anywhere; the result lies on the model's device
        was_training = self.training
        self.eval()
        for _ in range(n_new):
            logits = self(idx[:, -self.config.context:])[:, -1].float()
            # softmax(z / T) = temperature_distribution(softmax(z), T); T = 0 takes the argmax without a draw
            probs = temperature_distribution(torch.softmax(logits.double(), dim=-1), temperature)
            if temperature == 0:
                nxt = probs.argmax(-1, keepdim=True).to(idx.device)
            else:
                nxt = torch.multinomial(probs.float(), 1, generator=generator).to(idx.device)
            idx = torch.cat([idx, nxt], dim=1)
        self.train(was_training)
        return idx


def flops_per_token(config: TransformerConfig, training: bool = True) -> float:
    """Matrix-multiply FLOPs per token at full context: 2 per weight, plus attention's 4·T·d per layer.

    Forward: each weight of a linear layer costs one multiply and one add (2 FLOPs); the scores
    Q·Kᵀ and the weighted sum A·V cost 2·T·d each per layer (counted over the full context, as is
    usual for MFU). Training adds the backward pass at twice the forward: 3× in total. Norms,
    softmax and the embedding lookup are ignored (a few per cent at most).
    """
    d, f, n_layers, t = config.d_model, config.ff_width, config.n_layers, config.context
    weights_per_layer = 3 * d * d + d * d + 2 * d * f
    forward = 2 * (n_layers * weights_per_layer + d * config.vocab_size) + n_layers * 4 * t * d
    return float(3 * forward if training else forward)
