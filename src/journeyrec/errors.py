"""The one base class of the errors a user can fix: bad input, bad configuration, a damaged bundle.

Command-line entry points print such an error as its one-line message and exit with status 2
(no traceback; ``HYDRA_FULL_ERROR=1`` shows it). Anything else is a bug and keeps its traceback.
Each subclass also derives from the built-in exception it used to be (``ValueError``, ...), so
callers that catch those keep working.
"""

from __future__ import annotations

__all__ = ["JourneyrecError", "ConfigError", "MissingInputError"]


class JourneyrecError(Exception):
    """An error in what the user gave us; the message names the problem and the fix."""


class ConfigError(JourneyrecError, ValueError):
    """A configuration key or value that does not fit the typed schema."""


class MissingInputError(JourneyrecError, FileNotFoundError):
    """A file or directory the user named (data, prepared store, consent table, ...) is not there."""
