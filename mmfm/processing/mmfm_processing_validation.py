"""Small input checks shared by the mmfm processors.

Every check raises `ValueError` (bad value) or `TypeError` (bad type) with a message that names the field,
says what it got and what it expects, and suggests a fix where one is obvious. Nothing here truncates, drops
or clips data: a check either passes the data through unchanged or raises.

`field` arguments are the user-facing names of what is checked, e.g. `"images[2]"` or `"edge_index"`, so an
error points at the offending item of a batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from transformers.feature_extraction_utils import BatchFeature
from transformers.utils import TensorType

RETURN_TENSORS_CHOICES = ("pt", "np", None)


def describe(value: Any) -> str:
    """A short description of `value` for error messages: its type, and shape and dtype for arrays."""
    if isinstance(value, np.ndarray | torch.Tensor):
        kind = "tensor" if isinstance(value, torch.Tensor) else "array"
        return f"{kind} of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, list | tuple):
        return f"{type(value).__name__} of length {len(value)}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def check_choice(field: str, value: Any, choices: Sequence[Any]) -> Any:
    """Return `value` if it is one of `choices`, else raise `ValueError`."""
    if value not in choices:
        raise ValueError(f"`{field}` must be one of {list(choices)}, got {value!r}.")
    return value


def check_bool(field: str, value: Any) -> bool:
    """Return `value` if it is a bool (numpy bools included), else raise `TypeError`."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"`{field}` must be a bool (True or False), got {describe(value)}.")
    return bool(value)


def check_int(field: str, value: Any, minimum: int | None = None, allow_none: bool = False) -> int | None:
    """Return `value` as an int if it is an integer `>= minimum` (or None when allowed), else raise.

    Bools are refused: `True` is an int to Python but never a meaningful size.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        expected = "an int or None" if allow_none else "an int"
        raise TypeError(f"`{field}` must be {expected}, got {describe(value)}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"`{field}` must be >= {minimum}, got {int(value)}.")
    return int(value)


def check_return_tensors(return_tensors: Any) -> str | None:
    """Normalise `return_tensors` to "pt", "np" or None (the transformers convention), else raise."""
    if isinstance(return_tensors, TensorType):
        return_tensors = return_tensors.value
    if return_tensors not in RETURN_TENSORS_CHOICES:
        raise ValueError(
            f"`return_tensors` must be one of {list(RETURN_TENSORS_CHOICES)}, got {return_tensors!r}. 'pt' "
            "returns torch tensors, 'np' numpy arrays, None a list with one numpy array per sample."
        )
    return return_tensors


def is_array_like(value: Any) -> bool:
    """True for numpy arrays, torch tensors, lists and tuples (not for strings or scalars)."""
    return isinstance(value, np.ndarray | torch.Tensor | list | tuple)


def to_numpy(value: Any, field: str, kinds: str = "iuf") -> np.ndarray:
    """Convert an array-like (numpy array, torch tensor, nested lists) to a numpy array, checking its dtype.

    Args:
        value: the input.
        field: its name for error messages.
        kinds: accepted numpy dtype kinds: "i" signed int, "u" unsigned int, "f" float, "b" bool.

    Returns:
        A numpy array (a view where possible, never a lossy conversion).

    Raises:
        TypeError: `value` is not array-like, or its dtype kind is not in `kinds`.
        ValueError: a nested list is ragged (its rows have different lengths).
    """
    if isinstance(value, torch.Tensor) and value.device.type == "meta":
        raise ValueError(f"`{field}` is a tensor on the meta device (it holds no data): pass real values.")
    if isinstance(value, torch.Tensor):
        array = value.detach().cpu().numpy() if value.dtype != torch.bfloat16 else value.float().cpu().numpy()
    elif isinstance(value, np.ndarray):
        array = value
    elif isinstance(value, list | tuple) or (np.isscalar(value) and not isinstance(value, str | bytes)):
        try:
            array = np.asarray(value)
        except ValueError as err:
            raise ValueError(
                f"`{field}` could not be read as a rectangular array: its nested lists have different "
                f"lengths ({err})."
            ) from None
    else:
        raise TypeError(
            f"`{field}` must be a numpy array, a torch tensor or a (nested) list of numbers, got "
            f"{describe(value)}."
        )
    if array.dtype == object or array.dtype.kind not in kinds:
        names = {"i": "int", "u": "unsigned int", "f": "float", "b": "bool"}
        expected = "/".join(names[k] for k in kinds)
        raise TypeError(f"`{field}` must hold {expected} values, got {describe(array)}.")
    return array


def check_finite(array: np.ndarray, field: str, allow_nan: bool = False, hint: str = "") -> None:
    """Raise `ValueError` if a float array holds Inf (or NaN unless `allow_nan`), naming the first one."""
    if array.dtype.kind != "f":
        return
    bad = np.isinf(array) if allow_nan else ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        what = "Inf" if allow_nan else "NaN/Inf"
        message = (
            f"`{field}` must hold finite values, got {int(bad.sum())} {what} value(s) (first at index "
            f"{first}: {array[first]})."
        )
        raise ValueError(message + (f" {hint}" if hint else ""))


def check_not_empty(items: Iterable[Any] | np.ndarray, field: str, what: str) -> None:
    """Raise `ValueError` if a batch or a sample is empty."""
    if len(items) == 0:  # type: ignore[arg-type]
        raise ValueError(f"`{field}` is empty: expected at least one {what}.")


def make_batch_feature(data: dict[str, np.ndarray], return_tensors: str | None) -> BatchFeature:
    """Wrap stacked numpy arrays `(B, ...)` in a `BatchFeature` following the transformers convention.

    `return_tensors="pt"` gives torch tensors and "np" numpy arrays, both stacked with a leading batch
    dimension and the dtypes of `data` kept; None gives, per key, a list with one numpy array per sample
    (what transformers' `pad` and image processors return without `return_tensors`).
    """
    return_tensors = check_return_tensors(return_tensors)
    if return_tensors is None:
        data = {key: list(value) for key, value in data.items()}
    return BatchFeature(data=data, tensor_type=return_tensors)
