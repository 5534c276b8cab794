"""LightningDataModule over prepared sequences: fixed-length padded int64 batches."""

from __future__ import annotations

from typing import Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from journeyrec.data.datasets import EvalWindows, EpochBatchSampler, TrainWindows, identity_collate
from journeyrec.data.prepare import PreparedData

__all__ = ["SequenceDataModule"]


class SequenceDataModule(pl.LightningDataModule):
    """Serves training windows (shuffled, seeded) and validation cases (the test split is
    evaluated once, after training, by ``journeyrec.evaluation.ranking.evaluate``).

    ``features`` are the per-position inputs the model reads (event_type, channel, time_gap).
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
        self.train_set = TrainWindows(seqs, split.train_ends, max_len, self.features)
        self.valid_set = EvalWindows(seqs, split.valid, max_len, self.features)
        if len(self.train_set) == 0:
            raise ValueError("no user has at least 2 training events: nothing to train on (check the data and split)")
        if len(self.valid_set) == 0:
            raise ValueError("the split produced no validation cases (users need >= 3 events for leave-one-out)")

    def _loader(self, ds, batch_size: int) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=batch_size,
            shuffle=False,
            collate_fn=identity_collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        sampler = EpochBatchSampler(
            self.train_set.lengths, self.batch_size, seed=self.seed, by_length=self.bucket_by_length
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
        return self._loader(self.valid_set, self.eval_batch_size)
