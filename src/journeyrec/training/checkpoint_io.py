"""How Lightning writes and reads checkpoints in journeyrec: atomically, and without unpickling code.

Lightning's default (``TorchCheckpointIO``) writes through an fsspec transaction whose temporary
file lives in the system temp directory; when that is another filesystem than the run directory
(a tmpfs ``/tmp``, a mounted output volume), the final move is a copy into ``last.ckpt`` that a
kill can tear, and nothing is fsynced. Here every checkpoint is written with
:func:`journeyrec.io.atomic_path` (temporary sibling, fsync, rename), and every read, resume
included, is ``torch.load(..., weights_only=True)``: tensors and plain containers only, so a
planted checkpoint cannot run code.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from journeyrec.io import atomic_path

__all__ = ["AtomicCheckpointIO", "load_checkpoint"]


def load_checkpoint(path: Any, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (an UnpicklingError names any other object)."""
    return torch.load(path, map_location=map_location, weights_only=True)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` with atomic local writes and weights-only reads (see the module docstring)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options (got {storage_options!r})")
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(
        self,
        path: Any,
        map_location: Optional[Callable] = lambda storage, loc: storage,
        weights_only: Optional[bool] = None,
    ) -> dict[str, Any]:
        if weights_only is False:
            raise ValueError("journeyrec reads checkpoints with weights_only=True only (no pickled objects)")
        return load_checkpoint(path, map_location)
