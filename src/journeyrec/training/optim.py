"""One optimiser for a model whose item id embedding has a sparse gradient.

``torch.optim.AdamW`` refuses sparse gradients and ``torch.optim.SparseAdam`` refuses dense ones,
while Lightning's automatic optimisation and the learning-rate schedulers take one optimiser.
:class:`SparseDenseAdam` is that one optimiser: its parameter groups are the groups of an inner
SparseAdam (the sparse parameters) followed by those of an inner AdamW (the rest), the very same
dict objects, so a scheduler that sets ``lr`` on them steers both, and one state dict holds both
(parameters are disjoint), so checkpoints save and restore it like any optimiser.

SparseAdam is "lazy" Adam: a row's moments and weights change only in steps whose gradient has
that row, where dense Adam would keep moving every row on its old momentum. Its moments are
dense tables like AdamW's (2 x rows x D): the optimiser state stays linear in the catalogue.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch

__all__ = ["SparseDenseAdam"]


class SparseDenseAdam(torch.optim.Optimizer):
    """SparseAdam on ``sparse_params``, AdamW on ``dense_groups``, stepped together."""

    def __init__(
        self,
        sparse_params: Iterable[torch.Tensor],
        dense_groups: list[dict[str, Any]],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
    ) -> None:
        self._sparse = torch.optim.SparseAdam(list(sparse_params), lr=lr, betas=betas)
        self._dense = torch.optim.AdamW(dense_groups, lr=lr, betas=betas)
        self._n_sparse_groups = len(self._sparse.param_groups)
        super().__init__(self._sparse.param_groups + self._dense.param_groups, {})
        self._link()

    def _link(self) -> None:
        """Point the inner optimisers at this optimiser's groups and state (after a load too)."""
        self._sparse.param_groups = self.param_groups[: self._n_sparse_groups]
        self._dense.param_groups = self.param_groups[self._n_sparse_groups :]
        self._sparse.state = self._dense.state = self.state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)  # replaces self.state and self.param_groups
        self._link()

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._sparse.step()
        self._dense.step()
        return loss
