"""Torch datasets over prepared sequences that build whole batches at once.

Both datasets implement ``__getitems__`` (a list of indices -> one batch dict), which
``torch.utils.data.DataLoader`` calls instead of per-sample ``__getitem__`` + collate; together
with :func:`journeyrec.data.sequences.gather_windows` that keeps Python out of the hot path:
one vectorised gather per batch, fixed-length int64 tensors out.
"""

from __future__ import annotations

from typing import Iterator, Sequence, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from journeyrec.data.sequences import EvalCases, SequenceData, gather_windows, history_pairs

__all__ = ["TrainWindows", "EvalWindows", "EpochBatchSampler", "EvalBatchSampler", "identity_collate", "trim_padding"]


_Batch = TypeVar("_Batch")


def identity_collate(batch: _Batch) -> _Batch:
    """The batch is already collated by ``__getitems__`` (a dict of tensors, though DataLoader's
    types say a list of samples)."""
    return batch


def trim_padding(batch: dict[str, torch.Tensor], keys: Sequence[str]) -> dict[str, torch.Tensor]:
    """Drop leading columns that are padding in every row. Exact for journeyrec encoders:
    positions count back from the most recent event and padding is masked, so a shorter window
    gives the same outputs at real positions while skipping the wasted work."""
    nonpad = (batch["items"] != 0).any(dim=0)
    first = int(nonpad.to(torch.int8).argmax()) if bool(nonpad.any()) else nonpad.shape[0] - 1
    if first == 0:
        return batch
    return {k: (v[:, first:] if k in keys else v) for k, v in batch.items()}


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices, a new order every epoch, reproducible from (seed, epoch).

    With ``by_length`` (the default) users of similar sequence length share a batch: sorting by
    length (random tie-breaking) and cutting into batches keeps padding, and with
    :func:`trim_padding` the transformer's work, proportional to real positions; the batch order
    is shuffled so training still meets lengths in random order. Without it, batches are a plain
    random permutation. The order depends only on (seed, epoch), so a run resumed from a
    checkpoint sees exactly the batches the uninterrupted run would have seen.

    ``batch_size`` is the GLOBAL batch. With ``num_replicas`` / ``rank`` (data-parallel training)
    every process builds the same global batches and keeps its own contiguous slice of each
    (``np.array_split``: sizes differ by at most one), so N processes together see exactly the
    batches one process would, step for step; with the loss normalised by the global number of
    targets (``RecModule``) the update is the single-process one. A final global batch smaller
    than ``num_replicas`` would leave a process empty-handed and is dropped.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        seed: int = 0,
        by_length: bool = True,
        drop_last: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.by_length = by_length
        self.drop_last = drop_last
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1} (num_replicas={num_replicas})")
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch (also after resuming)."""
        self.epoch = epoch

    def _batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch])
        n = len(self.lengths)
        order = np.lexsort((rng.random(n), self.lengths)) if self.by_length else rng.permutation(n)
        batches = [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        batches = [batches[b] for b in rng.permutation(len(batches))]
        if self.num_replicas == 1:
            return batches
        return [np.array_split(b, self.num_replicas)[self.rank] for b in batches if len(b) >= self.num_replicas]

    def __len__(self) -> int:
        return len(self._batches())

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self._batches():
            yield batch.tolist()


class TrainWindows(Dataset):
    """One training window per user: the last ``max_len + 1`` items of the training prefix,
    giving inputs ``items[:, :-1]`` and next-item targets ``targets = items[:, 1:]``. A position
    has a target only where both its input and its target are real items (0 elsewhere). Users
    whose prefix has fewer than 2 items have nothing to predict and are skipped.

    With ``newest`` one window per training target instead (every item of a prefix but the
    first): the ``max_len`` items before it as inputs, the target at the last position only. Each
    target is then read where inference reads, at the newest position of its own window, which
    a model that reads the whole window at every position (``model.causal=false``) needs; it
    costs a forward pass per target instead of per user (BSARec's and FMLP-Rec's training)."""

    def __init__(
        self,
        data: SequenceData,
        train_ends: np.ndarray,
        max_len: int,
        features: Sequence[str] = (),
        newest: bool = False,
    ) -> None:
        self.data = data
        self.max_len = max_len
        self.features = tuple(features)
        self.newest = newest
        starts = data.offsets[:-1]
        lengths = np.asarray(train_ends, dtype=np.int64) - starts
        if newest:
            # every end from start + 2 (two items: one input, one target) to the user's train end
            per_user = np.maximum(lengths - 1, 0)
            self.users = np.repeat(np.arange(len(lengths), dtype=np.int64), per_user)
            first = np.cumsum(per_user) - per_user
            k = np.arange(int(per_user.sum()), dtype=np.int64) - np.repeat(first, per_user)
            self.ends = starts[self.users] + 2 + k
            self.lengths = np.minimum(self.ends - starts[self.users], max_len + 1)
        else:
            self.users = np.nonzero(lengths >= 2)[0].astype(np.int64)
            self.ends = np.asarray(train_ends, dtype=np.int64)[self.users]
            self.lengths = np.minimum(lengths[self.users], max_len + 1)

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Inputs, next-item ``targets``, and for journey-aware objectives: ``target_<feature>``
        (the target position's features; ``target_event_type`` always, for event-type loss
        weights), ``target_index`` (flat indices of the positions with a target), ``positions``
        (absolute CSR index of each input position, -1 = padding, to look up per-event labels
        such as purchase intent)."""
        idx = np.asarray(indices, dtype=np.int64)
        length = self.max_len + 1
        gathered = self.features if "event_type" in self.features else (*self.features, "event_type")
        w = gather_windows(self.data, self.users[idx], self.ends[idx], length, gathered)
        batch = {name: torch.from_numpy(w[name][:, :-1]) for name in ("items", *self.features)}
        targets = np.where(w["items"][:, :-1] != 0, w["items"][:, 1:], 0)
        if self.newest:
            targets[:, :-1] = 0
        batch["targets"] = torch.from_numpy(targets)
        for name in gathered:
            batch[f"target_{name}"] = torch.from_numpy(w[name][:, 1:])
        pos = self.ends[idx][:, None] - length + np.arange(length, dtype=np.int64)[None, :]
        batch["positions"] = torch.from_numpy(np.where(w["items"] != 0, pos, -1)[:, :-1])
        batch = trim_padding(batch, list(batch))
        # the flat [B * L] indices of the positions that have a target, in row-major order (the
        # order boolean-mask packing gives): computed here on the host so that packing on the
        # GPU is an index_select of known size, not a mask whose size the host must wait for
        batch["target_index"] = torch.from_numpy(np.flatnonzero(batch["targets"].numpy()))
        return batch


class EvalBatchSampler(Sampler[list[int]]):
    """Evaluation batches of cases with similar window length, shortest first.

    Random batches on short-session files are mostly padding (one long user sets the width of
    the batch); with similar lengths together :func:`trim_padding` cuts each batch to what its
    users have, so the encoder's work follows the real positions. Metrics do not depend on the
    order: every batch carries ``case_index`` and the consumers put results back in case order.

    With ``num_replicas`` > 1 the sorted cases are padded by repeating the first ones (as
    ``DistributedSampler`` does) to a multiple of the replicas and dealt round-robin, so every
    rank has the same number of cases (``all_gather`` needs that) and similar lengths per batch.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, num_replicas: int = 1, rank: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1} (num_replicas={num_replicas})")
        order = np.argsort(np.asarray(lengths), kind="stable")
        total = -(-len(order) // num_replicas) * num_replicas
        if total > len(order):
            order = np.concatenate([order, order[: total - len(order)]])
        mine = order[rank::num_replicas]
        self.batches = [mine[i : i + batch_size].tolist() for i in range(0, len(mine), batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class EvalWindows(Dataset):
    """Evaluation cases as batches: input window, target, and the user's full history before
    the target as (row, item) pairs for the seen-excluded protocol. ``lengths`` (real items in
    each case's window) is what :class:`EvalBatchSampler` batches by."""

    def __init__(self, data: SequenceData, cases: EvalCases, max_len: int, features: Sequence[str] = ()) -> None:
        self.data = data
        self.cases = cases
        self.max_len = max_len
        self.features = tuple(features)
        lengths = np.minimum(np.asarray(cases.ends) - data.offsets[np.asarray(cases.users)], max_len)
        self.lengths = lengths.astype(np.int64)

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        users, ends = self.cases.users[idx], self.cases.ends[idx]
        w = gather_windows(self.data, users, ends, self.max_len, self.features)
        rows, items = history_pairs(self.data, users, ends)
        batch = trim_padding({name: torch.from_numpy(arr) for name, arr in w.items()}, list(w))
        batch["targets"] = torch.from_numpy(self.cases.targets[idx].astype(np.int64))
        batch["case_index"] = torch.from_numpy(idx)
        batch["history_rows"] = torch.from_numpy(rows)
        batch["history_items"] = torch.from_numpy(items)
        return batch
