"""What every command-line entry point shares: a user error is one line, not a traceback.

``scripts/*.py`` wrap their job in :func:`user_errors`. A :class:`~journeyrec.errors.JourneyrecError`
(bad data, bad configuration, a damaged bundle, ...) is printed as ``error: <message>`` on stderr
and the process exits with status 2; ``HYDRA_FULL_ERROR=1`` lets it through with its traceback,
as Hydra does for its own errors. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any, Callable, TypeVar

from journeyrec.errors import JourneyrecError

__all__ = ["user_errors", "EXIT_USER_ERROR"]

EXIT_USER_ERROR = 2
F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Run ``fn``; a JourneyrecError becomes one line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except JourneyrecError as exc:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(EXIT_USER_ERROR) from None

    return wrapper  # type: ignore[return-value]
