"""Input-pipeline throughput: ``python -m hvd_magtag.bench pipeline [--data-root DIR] [--clips 64]``.

Cases, each with one core (``threads=1``: tf.data private pool of one thread, sequential map) and all cores:

- ``bare decode``        read + ``tfio.audio.decode_mp3`` only (the ceiling of any mp3 path);
- ``mp3 -> raw windows``  :func:`~hvd_magtag.data.pipeline.train_dataset` for the raw model (decode, mono,
                         resample if needed, random window, batch), every file decoded whole;
- ``mp3 slice -> raw windows``  the same with the files' lengths known (a manifest): each window decoded
                         from a slice of its file (``data.window_decode``, what ``train.py`` does);
- ``mp3 -> fbank``        the same for the fbank model (adds the in-graph log-mel of its window);
- ``mp3 -> fbank whole clip``  an fbank model whose window is the whole clip (FCN-4: 29 s of log-mel);
- ``tfrecord raw -> raw windows`` / ``tfrecord windowed-raw -> raw windows`` / ``tfrecord fbank -> fbank``:
                         the same training batches read from extractions (:mod:`hvd_magtag.data.tfrecord`).

Throughput is clips/s in steady state (each measurement: a fresh iterator, one untimed warm-up epoch, then
whole epochs of at least :data:`MIN_TIMED_CLIPS` clips timed; the cases are measured round robin,
``--iters`` rounds, so load from other processes affects them alike; mean ± stdev over rounds) and
x real time (clips/s * clip seconds).
Targets, printed as ratios: the mp3 pipeline keeps >= 80% of bare-decode throughput; TFRecord reading is
>= 5x the mp3 path. Without ``--data-root`` a temporary dataset of ``--clips`` 30 s, 16 kHz mono mp3s
(a random melody over noise) is written first. Numbers on a shared machine are noisy: compare ratios
measured in the same run.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from hvd_magtag import audio
from hvd_magtag.bench import row
from hvd_magtag.models.registry import ModelSpec, get_spec

log = logging.getLogger(__name__)

BENCH = "pipeline"
CLIP_SECONDS = 30.0
#: Targets (ratios) this benchmark prints.
TARGET_PIPELINE_VS_DECODE = 0.8
TARGET_TFRECORD_VS_MP3 = 5.0
#: Clips consumed per timed call (whole epochs).
MIN_TIMED_CLIPS = 128


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-root", type=Path, default=None, help="folder of mp3s to read (default: synthetic)"
    )
    parser.add_argument("--clips", type=int, default=64, help="clips to use (default 64)")
    parser.add_argument("--batch-size", type=int, default=8, help="training batch size (default 8)")
    parser.add_argument("--raw-model", default="samplecnn", help="raw-input model whose spec to use")
    parser.add_argument("--fbank-model", default="shortchunk_cnn", help="fbank-input model (window features)")
    parser.add_argument("--whole-clip-model", default="fcn4",
                        help="fbank model fed the whole clip, an extra mp3 case ('' to skip)")  # fmt: skip
    parser.add_argument("--iters", type=int, default=3, help="round-robin rounds (default 3)")
    parser.add_argument(
        "--threads", type=int, default=None, help="'all cores' thread count (default: cpu count)"
    )


def write_dataset(
    folder: Path, n_clips: int, rate: int, seconds: float = CLIP_SECONDS, seed: int = 0
) -> list[str]:
    """``n_clips`` mono mp3s of ``seconds`` s at ``rate`` Hz: a random note sequence with harmonics over noise."""
    import tensorflow as tf
    import tensorflow_io as tfio

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    paths = []
    for i in range(n_clips):
        notes = 110.0 * 2 ** (rng.integers(0, 36, size=int(seconds * 4)) / 12)  # 4 notes per second
        f = np.repeat(notes, len(t) // len(notes) + 1)[: len(t)]
        phase = 2 * np.pi * np.cumsum(f) / rate
        x = sum(0.2 / k * np.sin(k * phase) for k in (1, 2, 3)) + 0.02 * rng.standard_normal(len(t))
        path = folder / f"bench{i:03d}.mp3"
        tf.io.write_file(
            str(path), tfio.audio.encode_mp3(tf.constant(x.astype(np.float32)[:, None]), rate=rate)
        )
        paths.append(str(path))
    return paths


def _clips(paths: list[str], n_tags: int = 50):
    from hvd_magtag.data.catalog import Clip

    rng = np.random.default_rng(0)
    return [Clip(Path(p).stem, p, (rng.random(n_tags) < 0.1).astype(np.float32), "train") for p in paths]


def _spec(name: str, fallback_input: str):

    try:
        return get_spec(name)
    except (KeyError, ImportError) as e:
        log.warning("model %s unavailable (%s): using a default %s ModelSpec", name, e, fallback_input)
        return ModelSpec(input=fallback_input)


def _steady_seconds(ds, warm_items: int, timed_items: int) -> float:
    """Seconds for ``timed_items`` elements of a fresh iterator, after ``warm_items`` untimed ones (graph
    building and buffers filling). The iterator is dropped afterwards so no idle pipeline reads ahead while
    another case is timed."""
    iterator = iter(ds)
    for _ in range(warm_items):
        next(iterator)
    t0 = time.perf_counter()
    for _ in range(timed_items):
        next(iterator)
    seconds = time.perf_counter() - t0
    del iterator
    return seconds


#: (case, the case it is compared with, target ratio or None): the ratio rows of each thread count
RATIOS = (
    ("mp3 -> raw windows", "bare decode", TARGET_PIPELINE_VS_DECODE),
    ("mp3 -> fbank", "bare decode", TARGET_PIPELINE_VS_DECODE),
    ("mp3 slice -> raw windows", "mp3 -> raw windows", None),
    ("tfrecord raw -> raw windows", "mp3 -> raw windows", TARGET_TFRECORD_VS_MP3),
    ("tfrecord windowed-raw -> raw windows", "mp3 -> raw windows", TARGET_TFRECORD_VS_MP3),
    ("tfrecord fbank -> fbank", "mp3 -> fbank", TARGET_TFRECORD_VS_MP3),
)


def _input_files(args: argparse.Namespace, work: Path, sample_rate: int) -> list[str]:
    """The mp3s to read: ``--data-root``'s first ``--clips``, else a fresh synthetic set in ``work``."""
    if args.data_root:
        root = Path(args.data_root).expanduser().resolve()
        paths = sorted(str(p) for p in root.rglob("*.mp3"))[: args.clips]
        if not paths:
            raise FileNotFoundError(f"--data-root {args.data_root}: no .mp3 files found")
        return paths
    t0 = time.perf_counter()
    (work / "audio").mkdir()
    paths = write_dataset(work / "audio", args.clips, sample_rate)
    log.info("wrote %d x %.0f s mp3s in %.1f s", len(paths), CLIP_SECONDS, time.perf_counter() - t0)
    return paths


def _extract_all(clips, specs: dict, rates: dict, work: Path, rows: list[dict]) -> dict[str, str]:
    """Each TFRecord format of ``specs`` ({format: spec}) extracted into ``work``; one speed row each."""
    from hvd_magtag.data import tfrecord

    extractions = {}
    for fmt, spec in specs.items():
        t0 = time.perf_counter()
        out = work / f"tfr-{fmt}"
        tfrecord.extract({"train": clips}, spec, fmt, out, shards=8, manifest=rates, progress=False)
        took = time.perf_counter() - t0
        extractions[fmt] = str(out)
        size_mb = sum(f.stat().st_size for f in out.glob("*.tfrecord")) / 1e6
        rows.append(row(BENCH, f"extract {fmt} (all cores)", "clips/s", len(clips) / took, "clips/s",
                        size_mb=round(size_mb, 1)))  # fmt: skip
    return extractions


def _bare_decode(paths: list[str], n_used: int):
    """The ``bare decode`` case: read + decode only, ``threads`` files at a time."""
    import tensorflow as tf

    def make(threads: int):
        ds = tf.data.Dataset.from_tensor_slices(paths[:n_used])
        ds = ds.map(
            lambda p: tf.shape(audio.decode(tf.io.read_file(p), "mp3"))[0], num_parallel_calls=threads
        )
        options = tf.data.Options()
        options.threading.private_threadpool_size = threads
        options.threading.max_intra_op_parallelism = 1
        return ds.repeat().prefetch(2).with_options(options), n_used

    return make


def _training_input(clips, spec, batch: int, steps: int, manifest, tfrecord_dir=None):
    """A case reading training batches for ``spec``: (dataset, batches per epoch) for a thread count."""
    from hvd_magtag.data.pipeline import train_dataset

    def make(threads: int):
        ds = train_dataset(clips, spec, batch_size=batch, manifest=manifest, threads=threads,
                           tfrecord_dir=tfrecord_dir)  # fmt: skip
        return ds, steps

    return make


def _measure(cases: dict, threads: int, args, epochs: int, n_used: int, seconds: float, rows: list[dict]):
    """Round-robin timing of every case at ``threads``; clips/s and x-real-time rows, then the ratio rows."""
    cores = "1 core" if threads == 1 else f"{threads} cores"
    datasets = {name: make(threads) for name, make in cases.items()}  # (ds, items per epoch)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.iters):  # round robin: load from other processes hits every case alike
        for name, (ds, n_items) in datasets.items():
            times[name].append(_steady_seconds(ds, n_items, n_items * epochs))
    rate_of: dict[str, float] = {}
    for name in cases:
        mean = statistics.fmean(times[name])
        spread = statistics.stdev(times[name]) if len(times[name]) > 1 else 0.0
        rate_of[name] = clips_per_s = n_used * epochs / mean
        rows.append(row(BENCH, f"{name} ({cores})", "clips/s", clips_per_s, "clips/s",
                        spread=clips_per_s * spread / mean, threads=threads))  # fmt: skip
        rows.append(row(BENCH, f"{name} ({cores})", "x real time", clips_per_s * seconds, "x",
                        threads=threads))  # fmt: skip
    for name, base, target in RATIOS:
        ratio = rate_of[name] / rate_of[base]
        met = {} if target is None else {"target": target, "meets_target": bool(ratio >= target)}
        rows.append(row(BENCH, f"{name} / {base} ({cores})"[:60], "ratio", ratio, "x", **met))


def run(args: argparse.Namespace) -> list[dict]:
    from hvd_magtag.data.manifest import Manifest, scan
    from hvd_magtag.data.pipeline import steps_per_epoch

    all_threads = args.threads or os.cpu_count() or 1
    raw_spec, fbank_spec = _spec(args.raw_model, "raw"), _spec(args.fbank_model, "fbank")
    tmp = tempfile.TemporaryDirectory(prefix="hvd_magtag_bench_")
    work = Path(tmp.name)
    rows: list[dict] = []
    try:
        paths = _input_files(args, work, raw_spec.sample_rate)
        clips = _clips(paths)
        lengths = Manifest(scan(paths))  # rates and decoded lengths, as train.py's validation gives them
        # a plain {path: rate} manifest: the whole-file cases decode every file (no lengths known)
        rates = {p: lengths.rate(p) for p in paths}
        seconds = float(np.mean([lengths.duration(p) for p in paths[:4]]))
        batch = min(args.batch_size, len(clips))
        steps = steps_per_epoch(len(clips), batch, 1)
        n_used = steps * batch
        # each timed call covers >= MIN_TIMED_CLIPS clips, so read-ahead (prefetch) cannot flatter a case
        epochs = -(-MIN_TIMED_CLIPS // n_used)
        specs = {"raw": raw_spec, "windowed-raw": raw_spec, "fbank": fbank_spec}
        tfr = _extract_all(clips, specs, rates, work, rows)

        def train(spec, manifest=rates, tfrecord_dir=None):
            return _training_input(clips, spec, batch, steps, manifest, tfrecord_dir)

        cases = {
            "bare decode": _bare_decode(paths, n_used),
            "mp3 -> raw windows": train(raw_spec),
            "mp3 -> fbank": train(fbank_spec),
            "mp3 slice -> raw windows": train(raw_spec, manifest=lengths),
            "tfrecord raw -> raw windows": train(raw_spec, tfrecord_dir=tfr["raw"]),
            "tfrecord windowed-raw -> raw windows": train(raw_spec, tfrecord_dir=tfr["windowed-raw"]),
            "tfrecord fbank -> fbank": train(fbank_spec, tfrecord_dir=tfr["fbank"]),
        }
        if args.whole_clip_model:
            cases[f"mp3 -> fbank whole clip ({args.whole_clip_model})"] = train(
                _spec(args.whole_clip_model, "fbank")
            )
        for threads in sorted({1, all_threads}):
            _measure(cases, threads, args, epochs, n_used, seconds, rows)
        for r in rows:
            r.setdefault("clip_seconds", round(seconds, 2))
            r.setdefault("clips_per_epoch", n_used)
    finally:
        tmp.cleanup()
    return rows
