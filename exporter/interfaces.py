"""The two seams of the data path: what a source may ask of the pipeline (`Intake`), and what the
pipeline asks of a sink (`Sink`).

Dependencies run one way, sources → pipeline → sinks: a source sees only an `Intake` (never the
pipeline, its lock or the aggregate), and the pipeline sees its sinks only through `Sink`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from .decode.delivery import ObjectResult
from .model import Call
from .state import Op

# What a source saves with the counts of an object: state-store ops, or a function of the object's
# result that gives them (e.g. to record the outcome next to a file's size and mtime).
Progress = Iterable[Op] | Callable[[ObjectResult], Iterable[Op]]
# Runs once the counts and progress are committed (e.g. delete the SQS message that named the object).
After = Callable[[], None]
# (counter name, label values, increment): a source's own counter, counted in the same step as an object
ExtraCount = tuple[str, tuple[str, ...], int]


class Intake(Protocol):
    """What a source hands over, and the only way it reaches the counters and the checkpoint."""

    def register(self, source: str, extra: Iterable[str] = ()) -> None:
        """Announce a source (and the named counters it adds): its series start at zero."""

    def process(
        self, data: bytes, source: str, name: str = "", progress: Progress = (), after: After | None = None
    ) -> ObjectResult:
        """One delivery's bytes (a trail file, an S3 object): decoded, counted, handed to the sinks;
        `progress` is saved with those counts and `after` runs once they are saved."""
        ...

    def process_records(
        self,
        records: Sequence[bytes],
        source: str,
        progress: Progress = (),
        after: After | None = None,
        extra: Iterable[ExtraCount] = (),
    ) -> ObjectResult:
        """Records already split by the source (CloudWatch log event messages, one CloudTrail record each),
        counted as one object; `extra` counts go in the same step, so no checkpoint parts them."""
        ...

    def count_object(self, source: str, outcome: str, progress: Progress = (), after: After | None = None) -> None:
        """An object that was not decoded: skipped by its key, or failed to download."""

    def source_error(self, source: str, kind: str) -> None:
        """A failed call to the source's service (throttled, denied, network…)."""

    def stage(self, progress: Progress = (), after: After | None = None, extra: Iterable[ExtraCount] = ()) -> None:
        """Progress to save with the next checkpoint, counting no object (only `extra`, in the same step)."""

    def checkpoint(self, force: bool = False) -> bool:
        """Save counts and staged progress now. False if they are not saved (the save failed, or an
        earlier failure's retry is not due): the caller takes no new work until it is True again."""
        ...

    def fatal(self, reason: str) -> None:
        """The process cannot go on: it exits non-zero (after a graceful stop)."""

    def maybe_checkpoint(self) -> None:
        """Save them if the commit interval has passed."""


class Sink(Protocol):
    """A consumer of SQS calls. `consume` runs under the pipeline lock, once per object, with the calls
    that passed the metrics filters; what it returns runs after the lock is released (slow I/O)."""

    # whether it needs the raw JSON of each record (`raws`); without, `raws` may be empty
    wants_raw: bool

    def consume(self, calls: list[Call], raws: list[Any], observed: float, source: str) -> After | None: ...


@runtime_checkable
class Persistent(Protocol):
    """A component whose state is saved in every checkpoint, under `state_key`, and restored at start.

    Optionally `sectioned = True`: then `snapshot()` returns a mapping of part name → value, each part saved
    under `state_key/name` and written only when it changed (so a large state is split where it changes
    independently); `restore()` gets that mapping back, or the single value saved under `state_key` by a
    release from before the component was sectioned."""

    state_key: str

    def snapshot(self) -> Any: ...

    def restore(self, snap: Any) -> None: ...
