"""What ``fit`` and ``log_likelihood`` accept as data, and how it becomes what programs score.

The rule, entry by entry (the data tensor, or each tensor of a tuple or dict):

- numpy arrays become tensors (sharing memory where torch can; a read-only or reversed
  array is copied). Floating arrays take the floating dtype of the programs' parameters
  (float32 unless they are float64): numpy's float64 is its default, not a choice.
- unsigned integers (``uint8`` images, 16-bit images) become that floating dtype, values
  kept (0..255 stays 0..255). So does ``bool`` data given alone (a binarized image batch);
  a ``bool`` entry of a tuple or dict is a mask (``dgm.mask``, ``torch.where``) and is kept.
- signed integers (labels, indices, counts: what ``Categorical`` scores and ``nn.Embedding``
  looks up), complex numbers and torch floating tensors of any dtype are kept as they are.
- refused, with what to pass instead: lists (ragged or not), numpy arrays of objects,
  strings, dates or records, 0-dimensional data, and anything else that is not a tensor.

Casts are applied batch by batch, on the batch's device, so a ``uint8`` data set stays
``uint8`` (a quarter of float32) in memory and in transfers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

Data = Tensor | tuple[Tensor, ...] | dict[str, Tensor]

Array = Tensor | np.ndarray
# what fit accepts; as_data turns it into Data
Inputs = Array | tuple[Array, ...] | dict[str, Array]
_UNSIGNED = (torch.uint8, torch.uint16, torch.uint32, torch.uint64)
# the dtype each entry's batches are cast to (None: kept), in the data's structure
Dtypes = torch.dtype | None | tuple[torch.dtype | None, ...] | dict[str, torch.dtype | None]


def float_dtype(*programs: Any) -> torch.dtype:
    """The dtype of the first floating-point parameter of ``programs``, else torch's default."""
    for program in programs:
        if isinstance(program, nn.Module):
            for p in program.parameters():
                if p.is_floating_point():
                    return p.dtype
    return torch.get_default_dtype()


class Cast:
    """Casts each tensor of a batch to its entry's dtype (``as_data`` decides which)."""

    def __init__(self, dtypes: Dtypes) -> None:
        self.dtypes = dtypes

    def __call__(self, batch: Data) -> Data:
        d = self.dtypes
        if isinstance(batch, dict) and isinstance(d, dict):
            return {k: _to(v, d[k]) for k, v in batch.items()}
        if isinstance(batch, tuple) and isinstance(d, tuple):
            return tuple(_to(v, t) for v, t in zip(batch, d, strict=True))
        assert isinstance(batch, Tensor) and not isinstance(d, tuple | dict)
        return _to(batch, d)

    def tensor(self, x: Tensor) -> Tensor:
        """The cast of a batch of tensor data."""
        d = self.dtypes
        assert not isinstance(d, tuple | dict)
        return _to(x, d)

    def then(self, transform: Callable[[Tensor], Tensor] | None) -> Callable[[Tensor], Tensor]:
        """For tensor data: the cast, then ``transform`` (which sees floating batches)."""
        if transform is None:
            return self.tensor
        return lambda x: transform(self.tensor(x))


def as_data(
    data: Any, dtype: torch.dtype, caller: str, *, several: bool = True
) -> tuple[Data, Cast | None]:
    """``data`` as tensors, and the cast for each of its batches (``None``: nothing to cast).

    Args:
        data: a tensor or numpy array ``[N, ...]``, or (``several=True``) a tuple or dict of them.
        dtype: the floating dtype that numpy floats, unsigned integers and lone bools become.
        caller: the function named in error messages (``"fit"``).
        several: whether tuples and dicts are allowed.

    Raises:
        TypeError, ValueError: data that is not converted, saying what to pass instead.
    """
    dtypes: Dtypes
    if several and isinstance(data, tuple):
        pairs = [_entry(v, f"data[{i}]", dtype, caller) for i, v in enumerate(data)]
        out: Data = tuple(t for t, _ in pairs)
        dtypes = tuple(d for _, d in pairs)
        needed = any(d is not None for d in dtypes)
    elif several and isinstance(data, dict):
        for k in data:
            if not isinstance(k, str):
                raise TypeError(
                    f"{caller}: the keys of a data dict are passed as keyword arguments and "
                    f"must be strings, got {k!r}"
                )
        entries = {k: _entry(v, f"data[{k!r}]", dtype, caller) for k, v in data.items()}
        out = {k: t for k, (t, _) in entries.items()}
        dtypes = {k: d for k, (_, d) in entries.items()}
        needed = any(d is not None for d in dtypes.values())
    else:
        if not isinstance(data, Tensor | np.ndarray):
            raise TypeError(_not_data(data, caller, several))
        out, dtypes = _entry(data, "data", dtype, caller, alone=True)
        needed = dtypes is not None
    return out, Cast(dtypes) if needed else None


def _to(x: Tensor, dtype: torch.dtype | None) -> Tensor:
    return x if dtype is None else x.to(dtype)


def _entry(
    value: Any, where: str, dtype: torch.dtype, caller: str, *, alone: bool = False
) -> tuple[Tensor, torch.dtype | None]:
    """One tensor of the data and the dtype its batches are cast to (``None``: kept)."""
    from_numpy = isinstance(value, np.ndarray)
    if from_numpy:
        tensor = _from_numpy(value, where, caller)
    elif isinstance(value, Tensor):
        tensor = value
    else:
        raise TypeError(
            f"{caller}: {where} is a {type(value).__name__}; each entry of a tuple or dict of "
            "data must be a tensor or a numpy array [N, ...], indexed like the others"
        )
    if tensor.dim() == 0:
        raise ValueError(
            f"{caller}: {where} is 0-dimensional; its first dimension must index the data "
            "points ([N, ...])"
        )
    kind = tensor.dtype
    if kind.is_floating_point:
        return tensor, dtype if from_numpy and kind != dtype else None
    if kind in _UNSIGNED or (kind == torch.bool and alone):
        return tensor, dtype
    return tensor, None  # signed integers, complex numbers, the bool masks of tuples and dicts


def _from_numpy(a: np.ndarray, where: str, caller: str) -> Tensor:
    kind = a.dtype.kind
    if kind == "O":
        raise TypeError(
            f"{caller}: {where} is a numpy array of Python objects (dtype=object), e.g. rows "
            "of different lengths; pad them into one numeric array [N, ...] and pass the "
            "padding mask alongside, in a tuple or dict"
        )
    if kind in ("U", "S"):
        raise TypeError(
            f"{caller}: {where} is a numpy array of strings (dtype {a.dtype}); encode them as "
            "integer ids, e.g. np.unique(values, return_inverse=True)[1]"
        )
    if kind not in ("b", "i", "u", "f", "c"):
        raise TypeError(
            f"{caller}: {where} has numpy dtype {a.dtype}, which has no tensor type; convert "
            "it to an array of numbers or bools"
        )
    if not a.flags.writeable or any(s < 0 for s in a.strides):
        a = np.array(a)  # torch shares only writable memory with non-negative strides
    return torch.from_numpy(a)


def _not_data(value: Any, caller: str, several: bool) -> str:
    if isinstance(value, list):
        ragged = "pad rows of different lengths" + (
            " and pass the padding mask alongside), or a tuple or dict of tensors indexed alike"
            if several
            else ")"
        )
        return (
            f"{caller}: data is a list; pass a tensor [N, ...] (torch.tensor(rows) for rows of "
            f"numbers, torch.stack(items) for tensors of one shape; {ragged}"
        )
    what = (
        "a tensor, a numpy array, or a tuple or dict of them"
        if several
        else "one tensor or numpy array of data points [N, ...]"
    )
    hint = "; np.asarray(data) converts array-likes" if hasattr(value, "__array__") else ""
    return f"{caller}: data must be {what}, got {type(value).__name__}{hint}"


__all__ = ["Cast", "Data", "Inputs", "as_data", "float_dtype"]
