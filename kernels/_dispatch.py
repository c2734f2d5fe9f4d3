"""Which implementation an entry point runs.

- a CUDA tensor runs the Triton kernel;
- a CPU tensor runs the PyTorch path, unless TRITON_INTERPRET=1 is set, in which
  case the Triton kernel runs under Triton's CPU interpreter (how CI checks kernels);
- `force_backend(...)` overrides both: the test hook that runs any backend.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch

Backend = Literal["triton", "torch"]

_forced: Backend | None = None


def backend_for(t: torch.Tensor) -> Backend:
    if _forced is not None:
        return _forced
    if t.is_cuda:
        return "triton"
    if os.environ.get("TRITON_INTERPRET") == "1":
        return "triton"
    return "torch"


@contextmanager
def force_backend(name: Backend | None) -> Iterator[None]:
    """Run every entry point on `name` inside the block ('triton' on a CPU tensor
    needs TRITON_INTERPRET=1 set before triton is imported)."""
    global _forced
    previous, _forced = _forced, name
    try:
        yield
    finally:
        _forced = previous
