"""Helpers for the course "From coin flips to Transformers: maximum likelihood for language models".

The path of a module says what it is: maths (top level), a figure (`viz`), or assessment.

Maths, one concept per module (inputs are checked after the maths, with `validate`):
    likelihood    ch01  coin flips, Gaussians, Markov chains: estimators and log-likelihoods
    information   ch01  entropy, cross-entropy, KL divergence of probability vectors
    sequences     ch02  the chain rule for sequences, perplexity, bits, temperature
    ngram         ch02  bigram models: counts, smoothing, sampling
    mlm           ch03  masking plans and the masked-LM objective, pseudo-log-likelihood
    losses        ch04  cross-entropy from logits: stable, smoothed, masked, its gradient
    models        ch05  the Transformer language model (config, blocks, FLOPs per token)
    train         ch05  the one training loop: AdamW, warm-up + cosine, clipping, checkpoints
    throughput    ch05  peak FLOP/s, model-FLOPs utilisation, timing helpers
    presets       ch05  named model shapes and recipes for CPU and GPU
    finetune      ch06  supervised fine-tuning: prompt/response masks, dialogue log-probs
    preferences   ch06  Bradley-Terry reward fitting, policy gradients
    distributed   ch07  data parallelism: sharded global batches, the global mean NLL, all-reduce, torchrun
    text                corpora (Python's docs and docstrings, your files), tokenizers, splits, batches
    synthetic           a language with a known entropy rate
    runtime             seeds, threads, device choice, GPU precision and compile policy
    validate            the shared input checks behind every clear ValueError

Figures and explorers:
    viz           `viz.style()` once per lesson; `viz.ch01` … `viz.ch06` hold each chapter's figures

Assessment:
    assessment    items and their verdicts, `check()`, exercise generation, assignments, the grader
"""

__version__ = "0.1.0"
