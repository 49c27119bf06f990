"""TensorBoard event files of a run directory: keeping them consistent when a run resumes.

A run killed between two checkpoints has already written summaries for steps after its last checkpoint; the
resumed run computes those steps again and writes them again, so TensorBoard would draw two points per step
(or a zig-zag). :func:`trim_events` removes, before the resumed run writes anything, every event whose step
is past the checkpoint it resumes from, the same rule ``metrics.jsonl`` follows. Files are read and written
with TensorBoard's own record reader and writer and replaced atomically; a record torn by the kill (a
truncated last record) ends the file where it was cut.
"""

from __future__ import annotations

import io
from pathlib import Path

from hvd_magtag import fsutil

#: TensorBoard's event file names (``events.out.tfevents.<time>.<host>.<pid>.<n>.v2`` for TF2 writers).
EVENT_GLOB = "events.out.tfevents.*"


def event_files(logdir: str | Path) -> list[Path]:
    """Event files under ``logdir`` (recursively: TensorBoard reads sub-folders as separate runs), sorted."""
    return sorted(p for p in Path(logdir).rglob(EVENT_GLOB) if p.is_file())


def trim_events(logdir: str | Path, step: int) -> dict[Path, int]:
    """Drop every event with ``event.step > step`` from the event files under ``logdir``.

    Events without a summary (the file-version header, graph and metadata records) are kept whatever their
    step. Returns {file: number of events dropped} for the files that changed; files without such events are
    left untouched (not rewritten). Call on one process only (rank 0) before the resumed run's writer opens.
    """
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    changed: dict[Path, int] = {}
    for path in event_files(logdir):
        kept: list[bytes] = []
        dropped = 0
        for record in RawEventFileLoader(str(path)).Load():  # stops quietly at a truncated last record
            event = event_pb2.Event.FromString(record)
            if event.HasField("summary") and event.step > step:
                dropped += 1
            else:
                kept.append(record)
        if not dropped:
            continue
        buffer = io.BytesIO()
        writer = RecordWriter(buffer)
        for record in kept:
            writer.write(record)
        # the temporary's name holds no "tfevents": a TensorBoard watching the folder reads every such file
        fsutil.atomic_write(path, buffer.getvalue(), temp_stem="trim")
        changed[path] = dropped
    return changed
