"""One base class for every error the package raises on purpose.

Command-line entry points catch :class:`K8sGpuRlError` and print its message without a
traceback (:func:`run_command`): these errors describe a user's mistake (a bad value, a
missing file), not a bug.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

# Exit statuses of every command line: done, a user's mistake (``error: ...`` on stderr, no
# traceback), interrupted by Ctrl-C or SIGTERM (128 + SIGINT, as a shell reports it).
EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130


class K8sGpuRlError(Exception):
    """Base class of the package's own errors."""


class ConfigError(K8sGpuRlError, ValueError):
    """A configuration value, file or name is invalid; the message names it and what is allowed."""


class BackendError(K8sGpuRlError, RuntimeError):
    """A backend (simulated or live cluster) cannot carry out a request."""


def run_command(work: Callable[[], int], interrupted: str) -> int:
    """A command line's exit status: ``work()``'s, or :data:`EXIT_USAGE` after printing
    ``error: <message>`` for a :class:`K8sGpuRlError`, or :data:`EXIT_INTERRUPTED` after
    printing ``interrupted`` for Ctrl-C (both on stderr, without a traceback)."""
    try:
        return work()
    except K8sGpuRlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return EXIT_INTERRUPTED
