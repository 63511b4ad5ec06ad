"""The typed errors of nasrepro.

Every error a user can cause derives from :class:`NasReproError`. The CLI prints such an error as one
line (``nasrepro: error: <message>``) and exits with status 2; anything else is a bug and keeps its
traceback.
"""


class NasReproError(Exception):
    """Base class of every error caused by input, data or configuration (not by a bug)."""


class InvalidArchError(NasReproError, ValueError):
    """An architecture spec that is malformed or not part of the search space (bad string, unknown op,
    cyclic or oversized graph)."""


class OutOfDomainError(NasReproError, KeyError):
    """A query outside what the benchmark defines: unknown dataset, metric, split, epoch, seed or device,
    or an architecture that is not in the search space."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class MissingEntryError(NasReproError, LookupError):
    """The query is well-formed and in the space, but this copy of the data has no value for it
    (e.g. an NB101 cell outside the 7 % we hold, or a per-seed value only stored as a mean)."""


class DataError(NasReproError, OSError):
    """A data file or root that is absent, truncated, corrupt, or of an unknown format."""


class ChecksumError(DataError):
    """A file whose sha256 differs from the registry's."""


class UnsafeFileError(DataError):
    """A pickle-based file that would run code when loaded, and was neither opted into nor checksummed."""


class ConfigError(NasReproError, ValueError):
    """A bad configuration or command-line value (unknown algorithm, bad seed range, budget <= 0, ...)."""


class BudgetExhaustedError(NasReproError):
    """An optimizer asked for more queries or simulated seconds than its budget allows."""


class ResultsConflictError(NasReproError):
    """An output directory holds results of another experiment (a different resolved config)."""


class CheckpointError(NasReproError):
    """A checkpoint that is corrupt or belongs to another configuration."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its repr if it has none): for wrapping a library's error, whose
    message may run over several lines (torch.load's do), into one of ours, which the CLI prints as one line."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)
