"""The typed data configuration: what ``data=<reader>`` and ``data.<key>=...`` compose to.

One object travels from the entry point through preparation (:mod:`journeyrec.data.prepare`)
into the prepared store's settings; nothing below reads a data key with a default of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from omegaconf import MISSING

__all__ = ["DataConfig", "TIMESTAMP_MIN", "TIMESTAMP_MAX_AHEAD_DAYS"]

# Event times are checked against a plausible range (``schema.TimeBounds``): events before
# TIMESTAMP_MIN cannot come from an online shop's logs (a negative or zero epoch, seconds read as
# milliseconds), and events more than TIMESTAMP_MAX_AHEAD_DAYS after the file's newest event are a
# unit error (milliseconds read as seconds), a placeholder date or a device clock far off. Both go
# to quarantine as ``timestamp_out_of_range``.
TIMESTAMP_MIN: str = "1990-01-01"  # data.timestamp_min: ISO date (UTC); null: no lower bound
TIMESTAMP_MAX_AHEAD_DAYS: float = 1.0  # data.timestamp_max_ahead_days; null: no upper bound


@dataclass
class DataConfig:
    """Where the events come from and how they become sequences and splits (``configs/data/*.yaml``)."""

    # reader: demo | events | s3rec | taobao | yoochoose | movielens | diginetica | retailrocket | rees46 | otto
    name: str = MISSING
    path: Optional[str] = (
        None  # the input file, or the directory holding the dataset's files under their published names
    )
    options: Dict[str, Any] = field(default_factory=dict)  # reader-specific, validated by the reader
    prepared: Optional[str] = (
        None  # an existing prepared store (scripts/prepare_data.py): training reads it, not the source
    )
    split: str = "leave_one_out"  # leave_one_out | global_time | last_session
    valid_fraction: float = 0.1  # global_time only
    test_fraction: float = 0.1  # global_time only
    # leave_one_out only: leave each user's newest N items out first. 1 turns the validation targets
    # into test targets, to tune what trains on validation targets (trainer.refit_epochs) on them
    drop_newest: int = 0
    dedup: bool = True  # drop exact duplicate events (same user, session, item, type, channel, timestamp)
    dedup_consecutive: bool = False  # collapse consecutive events on the same item into one position
    session_gap_minutes: float = 30.0  # inactivity gap that starts a new session when the source has no session ids
    min_user_events: int = 1  # k-core filtering: users need >= this many item events ...
    min_item_events: int = 1  # ... and items >= this many (repeated until both hold); 1 = off
    retention_days: Optional[float] = None  # drop events older than this many days before the newest event
    max_bad_fraction: float = 0.01  # fail when more than this share of the rows read is quarantined
    # event times outside [timestamp_min, the file's newest event + timestamp_max_ahead_days] go to
    # quarantine (timestamp_out_of_range); null turns a bound off (journeyrec.data.schema.TimeBounds)
    timestamp_min: Optional[str] = TIMESTAMP_MIN
    timestamp_max_ahead_days: Optional[float] = TIMESTAMP_MAX_AHEAD_DAYS
    consent_path: Optional[str] = None  # consent table (user_id, opted_out) as CSV / Parquet
    hmac_key_file: Optional[str] = None  # file holding the pseudonymisation key (else env JOURNEYREC_HMAC_KEY)
    allow_demo_key: bool = False  # accept the public demo key: only for public benchmark data and the demo shop
    store_events: bool = True  # write the cleaned canonical events (events.parquet) into the prepared store
    batch_size: int = 128
    eval_batch_size: int = 512
    num_workers: int = 0
    bucket_by_length: bool = True  # batch users of similar length (less padding, same samples per epoch)
