"""One base class for every error the package raises on purpose.

Command-line entry points catch :class:`K8sGpuRlError` and print its message without a
traceback: these errors describe a user's mistake (a bad value, a missing file), not a bug.
"""

from __future__ import annotations

# Exit statuses of every command line: done, a user's mistake (``error: ...`` on stderr, no
# traceback), interrupted by Ctrl-C or SIGTERM (128 + SIGINT, as a shell reports it).
EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130


class K8sGpuRlError(Exception):
    """Base class of the package's own errors."""


class ConfigError(K8sGpuRlError, ValueError):
    """A configuration value, file or name is invalid; the message names it and what is allowed."""


class BackendError(K8sGpuRlError, RuntimeError):
    """A backend (simulated or live cluster) cannot carry out a request."""
