"""Loss maths of the text objectives (causal LM, random token substitution), as plain functions.

Masked language modeling needs no function of its own: the model gathers the masked positions and calls
`masked_cross_entropy` (`mmfm_losses.py`). Each function is tested against a slow, obviously correct
loop in `tests/objectives/test_text_objectives.py`.

Part of the exportable model folder: imports only torch and its siblings.
"""

import torch

from .mmfm_losses import binary_token_loss, masked_cross_entropy


def causal_lm_loss(
    logits: torch.Tensor,
    labels: torch.Tensor | None = None,
    ignore_index: int = -100,
    shift_labels: torch.Tensor | None = None,
    num_items_in_batch: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """Next-token cross-entropy (GPT, Radford et al., 2018): position t predicts token t + 1.

    Args:
        logits: (B, L, V) scores of every position.
        labels: (B, L) the *unshifted* token ids (usually `input_ids`), `ignore_index` where no loss is
            wanted (padding). The shift happens here, so the last position predicts nothing.
        shift_labels: (B, L) labels already shifted (position t holds the target of position t, as
            transformers' `ForCausalLMLoss` takes them, e.g. from sequence-parallel data), used instead of
            shifting `labels`; every position is scored.
        num_items_in_batch: divide the summed loss by this instead of averaging (see `masked_cross_entropy`).

    Returns:
        Mean cross-entropy over the scored next tokens (0, with a gradient, if there are none).
    """
    vocab = logits.shape[-1]
    if shift_labels is not None:
        return masked_cross_entropy(
            logits.reshape(-1, vocab), shift_labels.reshape(-1), ignore_index, num_items_in_batch
        )
    shifted_logits = logits[:, :-1, :].reshape(-1, vocab)
    shifted_labels = labels[:, 1:].reshape(-1)
    return masked_cross_entropy(shifted_logits, shifted_labels, ignore_index, num_items_in_batch)


def token_substitution_loss(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """Binary cross-entropy of random token substitution (RTS, Di Liello et al., 2022): each token is
    classified as replaced (1) or original (0).

    Args:
        logits: (B, L) one score per token; sigmoid(score) is the probability the token was replaced.
        labels: (B, L) 1 replaced, 0 kept, `ignore_index` on padding and special tokens.

    Returns:
        Mean BCE over the scored tokens (0, with a gradient, if there are none).
    """
    scored = labels != ignore_index
    return binary_token_loss(logits, labels.clamp(min=0), scored)


__all__ = ["causal_lm_loss", "token_substitution_loss"]
