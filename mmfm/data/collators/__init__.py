"""Collators: pad examples into batches and apply each objective's seeded corruption."""

from .text import DataCollatorForCausalLM, DataCollatorForMaskedLM, DataCollatorForTokenSubstitution

__all__ = ["DataCollatorForCausalLM", "DataCollatorForMaskedLM", "DataCollatorForTokenSubstitution"]
