"""Errors that mean "the input is wrong": retrying cannot help, so tasks fail at once on them."""

from __future__ import annotations


class DataError(ValueError):
    """Bad or missing input. The message says what, where (file, line, column) and which value."""


class MissingInput(DataError):
    """A month folder or one of its files is not there."""


class ContractViolation(DataError):
    """A file does not match its table's contract (header, types, keys)."""

    def __init__(self, path: object, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{self.path}: {len(problems)} contract problem(s), nothing was written:\n{lines}")


class OutOfOrderMonth(DataError):
    """A month older than the latest applied one would roll the live tables back."""


class NotStaged(DataError):
    """A run's staging area misses what a later task needs: its stage tasks must run again."""
