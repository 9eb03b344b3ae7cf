"""Errors a person can act on.

Every error raised by the library on bad input is a :class:`KuaiRecError`. The CLI turns
any of them into a one-line message and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

from pathlib import Path


class KuaiRecError(Exception):
    """Base class of every error the library raises on purpose."""

    exit_code = 1


class DataError(KuaiRecError):
    """A data file is missing, malformed or fails validation.

    The message names the file and, where it applies, the row (1-based line number in the
    file, the header being line 1) and the column.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.row = row
        self.column = column
        self.detail = message
        where = []
        if self.file is not None:
            where.append(self.file)
        if row is not None:
            where.append(f"line {row}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ConfigError(KuaiRecError):
    """A parameter or configuration value is invalid (names the parameter, expected, got)."""

    exit_code = 2


class ModelError(KuaiRecError):
    """A model cannot do what was asked (unknown name, not fitted, incompatible save...)."""

    exit_code = 3
