"""Helpers for the course "From coin flips to Transformers: maximum likelihood for language models"."""

__version__ = "0.1.0"
