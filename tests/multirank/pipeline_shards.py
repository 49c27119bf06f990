"""Pipeline sharding under a real job: each rank reads its training and evaluation shards of tone clips.

Per training step every rank joins an allreduce (unequal step counts would hang the job). Each rank writes
``rank<r>.json``: the clip (identified by its tone frequency) of every training window over two epochs, the
clip indices of its evaluation rows, and the allreduced step count.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from hvd_magtag import distributed
from hvd_magtag.data.catalog import Clip
from hvd_magtag.data.pipeline import eval_dataset, steps_per_epoch, train_dataset
from hvd_magtag.models.registry import ModelSpec


def which_clip(window: np.ndarray, rate: int, freqs: list[float]) -> int:
    """Clip whose tone frequency is nearest the window's spectral peak (as tests/pipeline_audio_fixtures)."""
    spectrum = np.abs(np.fft.rfft(window * np.hanning(len(window)), n=8 * len(window)))
    peak = np.argmax(spectrum) * rate / (8 * len(window))
    return int(np.argmin(np.abs(np.asarray(freqs) - peak)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data", type=Path, required=True, help="JSON: clips (id, path, labels), rates, freqs"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=2)
    args = parser.parse_args()

    ctx = distributed.init()
    data = json.loads(args.data.read_text())
    clips = [Clip(c["id"], c["path"], np.asarray(c["labels"], np.float32), "train") for c in data["clips"]]
    rates, freqs = data["rates"], data["freqs"]
    spec = ModelSpec(input="raw", window=2048)
    spe = steps_per_epoch(len(clips), args.batch_size, ctx.size)
    ds = train_dataset(
        clips, spec, batch_size=args.batch_size, manifest=rates, rank=ctx.rank, size=ctx.size,
        deterministic=True, threads=ctx.threads,
    )  # fmt: skip
    train_ids, steps = [], 0
    for x, y in ds.take(2 * spe):
        for window, labels in zip(x.numpy(), y.numpy()):
            clip = which_clip(window, 16000, freqs)
            assert np.array_equal(labels, clips[clip].labels), "labels do not follow their clip"
            train_ids.append(clip)
        steps += int(distributed.allreduce(np.float32(1.0), average=False))  # a collective per step
    evals = eval_dataset(clips, spec, windows=2, batch_size=3, manifest=rates, rank=ctx.rank, size=ctx.size)
    eval_ids = sorted({int(c) for _, _, cs in evals for c in cs.numpy()})
    result = {
        "rank": ctx.rank,
        "size": ctx.size,
        "train": train_ids,
        "eval": eval_ids,
        "steps": steps,
        "spe": spe,
    }
    (args.out / f"rank{ctx.rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
