"""LightningDataModule over prepared sequences: fixed-length padded int64 batches."""

from __future__ import annotations

from typing import Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from journeyrec.data.datasets import EpochBatchSampler, EvalBatchSampler, EvalWindows, TrainWindows, identity_collate
from journeyrec.data.prepare import PreparedData

__all__ = ["SequenceDataModule"]


class SequenceDataModule(pl.LightningDataModule):
    """Serves training windows (shuffled, seeded) and validation cases (the test split is
    evaluated once, after training, by ``journeyrec.evaluation.ranking.evaluate``).

    ``features`` are the per-position inputs the model reads (event_type, channel, time_gap);
    ``newest_targets``: one training window per target (``loss.targets=newest``, see
    :class:`TrainWindows`).

    Data-parallel runs (``trainer=ddp``): ``batch_size`` is the global batch and each process
    gets its slice of every global batch (:class:`EpochBatchSampler`); validation cases are
    batched by window length and dealt across processes by :class:`EvalBatchSampler` (it
    repeats a few cases to even out the ranks; ``RecModule`` gathers the ranks and counts every
    case once). The prepared store is
    memory-mapped (``load_prepared(mmap=True)``), so each process pages in only the windows of
    its own batches, and processes on one node share those pages through the OS cache instead
    of each holding a copy. Pinned host memory (CUDA) lets the batch copy overlap compute;
    workers stay alive between epochs when ``num_workers > 0``.
    """

    def __init__(
        self,
        prepared: PreparedData,
        max_len: int,
        batch_size: int = 128,
        eval_batch_size: int = 512,
        features: Sequence[str] = (),
        num_workers: int = 0,
        seed: int = 42,
        bucket_by_length: bool = True,
        newest_targets: bool = False,
    ) -> None:
        super().__init__()
        self.prepared = prepared
        self.max_len = max_len
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.features = tuple(features)
        self.num_workers = num_workers
        self.seed = seed
        self.bucket_by_length = bucket_by_length
        seqs, split = prepared.sequences, prepared.split
        self.train_set = TrainWindows(seqs, split.train_ends, max_len, self.features, newest=newest_targets)
        self.valid_set = EvalWindows(seqs, split.valid, max_len, self.features)
        if len(self.train_set) == 0:
            raise ValueError("no user has at least 2 training events: nothing to train on (check the data and split)")
        if len(self.valid_set) == 0:
            raise ValueError("the split produced no validation cases (users need >= 3 events for leave-one-out)")

    def _replicas(self) -> tuple[int, int]:
        """(world size, this process's global rank); (1, 0) outside a distributed fit."""
        trainer = self.trainer
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def train_dataloader(self) -> DataLoader:
        world, rank = self._replicas()
        sampler = EpochBatchSampler(
            self.train_set.lengths,
            self.batch_size,
            seed=self.seed,
            by_length=self.bucket_by_length,
            num_replicas=world,
            rank=rank,
        )
        return DataLoader(
            self.train_set,
            batch_sampler=sampler,
            collate_fn=identity_collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def val_dataloader(self) -> DataLoader:
        world, rank = self._replicas()
        return DataLoader(
            self.valid_set,
            batch_sampler=EvalBatchSampler(self.valid_set.lengths, self.eval_batch_size, num_replicas=world, rank=rank),
            collate_fn=identity_collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )
