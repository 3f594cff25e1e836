"""Errors a user can act on. The library raises them; only the CLI turns them into exit codes."""

from __future__ import annotations

from wordofclick.settings import ConfigError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_LOCKED = 75  # EX_TEMPFAIL from sysexits.h: try again later


class DataError(ValueError):
    """An input file or its rows cannot be used; the message names the file and what to do."""


class LockedError(RuntimeError):
    """Another process holds the nightly lock or the store file; try again later (exit 75)."""


class ModelFolderError(ValueError):
    """A saved model folder is incomplete, corrupt or from a newer format version."""


def exit_code_for(error: BaseException) -> int:
    """The documented exit code for an error the library raised on purpose."""
    if isinstance(error, ConfigError):
        return EXIT_USAGE
    if isinstance(error, LockedError):
        return EXIT_LOCKED
    return EXIT_FAILURE


__all__ = [
    "EXIT_FAILURE",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_USAGE",
    "ConfigError",
    "DataError",
    "LockedError",
    "ModelFolderError",
    "exit_code_for",
]
