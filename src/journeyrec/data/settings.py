"""Defaults of the data config that the data layer applies itself (plain constants, no heavy
imports: ``journeyrec.config`` builds its Hydra schema from them without loading Arrow).

Event times are checked against a plausible range (``schema.TimeBounds``): events before
``TIMESTAMP_MIN`` cannot come from an online shop's logs (a negative or zero epoch, seconds read
as milliseconds), and events more than ``TIMESTAMP_MAX_AHEAD_DAYS`` after the file's newest
event are a unit error (milliseconds read as seconds), a placeholder date or a device clock far
off. Both go to quarantine as ``timestamp_out_of_range``.
"""

from __future__ import annotations

__all__ = ["TIMESTAMP_MIN", "TIMESTAMP_MAX_AHEAD_DAYS"]

TIMESTAMP_MIN: str = "1990-01-01"  # data.timestamp_min: ISO date (UTC); null: no lower bound
TIMESTAMP_MAX_AHEAD_DAYS: float = 1.0  # data.timestamp_max_ahead_days; null: no upper bound
