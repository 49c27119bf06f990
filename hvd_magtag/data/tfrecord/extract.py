"""Writing an extraction: decode every clip once, store what the model's input is cut from.

    python -m hvd_magtag.data.tfrecord --dataset synthetic --model samplecnn --format raw --out DIR [--shards 8]

writes, for every split, ``DIR/<split>-00000-of-00008.tfrecord ...`` and ``DIR/index.json`` (the formats and
the record layout: :mod:`hvd_magtag.data.tfrecord`). Audio is decoded by the same graph ops as
:mod:`hvd_magtag.data.pipeline`; fbank values come from python_speech_features, the reference.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import yaml
from tqdm import tqdm

from hvd_magtag import audio, cli
from hvd_magtag.config import DataConfig
from hvd_magtag.data import SPLITS, load_catalog
from hvd_magtag.data.catalog import Clip
from hvd_magtag.data.examples import ClipTable
from hvd_magtag.data.manifest import validate
from hvd_magtag.data.tfrecord.layout import (
    FORMATS,
    INDEX_FILE,
    INDEX_VERSION,
    RECORD_FIELDS,
    check_format,
    encode_record,
)
from hvd_magtag.features import hop_alignment, reference_logfbank
from hvd_magtag.models.registry import ModelSpec, get_spec

log = logging.getLogger(__name__)


def _clip_arrays(clips: Sequence[Clip], spec: ModelSpec, fmt: str, manifest: Any, threads: int | None):
    """Yield (waveform-derived array, n_samples) per clip, decoded in the graph in clip order."""
    table = ClipTable(clips, manifest)
    align = hop_alignment(spec)

    def load(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x = table.waveform(index, spec.sample_rate)
        n = tf.shape(x)[0]
        if fmt.startswith("windowed"):
            if spec.windowing == "superpool":
                x = audio.even_windows(x, spec.window, spec.n_windows, align)
            else:
                x = audio.all_windows(x, spec.window, align)
        return x, n

    parallel = threads or tf.data.AUTOTUNE
    ds = tf.data.Dataset.range(len(clips)).map(load, num_parallel_calls=parallel, deterministic=True)
    for x, n in ds.prefetch(4).as_numpy_iterator():
        if fmt == "fbank":
            x = reference_logfbank(x, spec.fbank, spec.sample_rate)
        elif fmt == "windowed-fbank":
            x = np.stack([reference_logfbank(w, spec.fbank, spec.sample_rate) for w in x])
        yield np.ascontiguousarray(x, np.float32), int(n)


def extract(
    splits: Mapping[str, Sequence[Clip]],
    spec: ModelSpec,
    fmt: str,
    out_dir: str | Path,
    *,
    shards: int = 8,
    manifest: Any = None,
    tags: Sequence[str] = (),
    dataset: str = "",
    model: str = "",
    threads: int | None = None,
    progress: bool = True,
) -> dict:
    """Write ``splits`` ({split: clips}) in format ``fmt`` for ``spec`` to ``out_dir``; return the index.

    Each split is written to ``min(shards, n_clips)`` files, clip i to file ``i % shards``; a tqdm bar on
    stderr counts clips. ``manifest`` gives file rates as for the pipeline.
    """
    check_format(fmt, spec)
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {
        "version": INDEX_VERSION,
        "format": fmt,
        "dataset": dataset,
        "model": model,
        "spec": spec.to_dict(),
        "tags": list(tags),
        "record": RECORD_FIELDS,
        "counts": {},
        "files": {},
        "file_clips": {},  # file name -> clip ids in record order (epoch lengths without reading)
    }
    bar = tqdm(total=sum(len(c) for c in splits.values()), unit="clip", file=sys.stderr, disable=not progress)
    for split, clips in splits.items():
        if not clips:
            continue
        n_files = max(1, min(shards, len(clips)))
        names = [f"{split}-{j:05d}-of-{n_files:05d}.tfrecord" for j in range(n_files)]
        writers = [tf.io.TFRecordWriter(str(out / name)) for name in names]
        file_clips: dict[str, list[str]] = {name: [] for name in names}
        try:
            bar.set_description(f"{fmt} {split}")
            for i, (clip, (data, n_samples)) in enumerate(
                zip(clips, _clip_arrays(clips, spec, fmt, manifest, threads))
            ):
                writers[i % n_files].write(encode_record(clip, i, data, n_samples))
                file_clips[names[i % n_files]].append(clip.clip_id)
                bar.update(1)
        finally:
            for w in writers:
                w.close()
        index["counts"][split] = len(clips)
        index["files"][split] = names
        index["file_clips"].update(file_clips)
    bar.close()
    (out / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    return index


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--override {text!r}: expected key=value, e.g. n_windows=4")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def main(argv: list[str] | None = None) -> int:
    parser = cli.OneLineParser(
        prog="python -m hvd_magtag.data.tfrecord",
        description="Pre-extracted TFRecords: decode once, train many times.",
        debug_flag=True,
    )
    parser.add_argument("--dataset", default="synthetic", help="catalog to extract (synthetic | mtat | ...)")
    parser.add_argument("--data-root", default="", help="dataset folder (default: the dataset's own default)")
    parser.add_argument("--vocabulary", default="top50", help="data.vocabulary (default top50)")
    parser.add_argument(
        "--model", default="samplecnn", help="registered model whose input spec to extract for"
    )
    parser.add_argument("--override", action="append", default=[], type=_parse_override, metavar="KEY=VALUE",
                        help="model override changing its spec (repeatable), e.g. n_windows=4")  # fmt: skip
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="record format (default: raw for raw models, fbank for fbank models)")  # fmt: skip
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--shards", type=int, default=8, help="files per split (default 8)")
    parser.add_argument("--splits", default=",".join(SPLITS), help="comma-separated splits (default all)")
    parser.add_argument("--threads", type=int, default=None, help="decode parallelism (default AUTOTUNE)")
    args = parser.parse_args(argv)
    return cli.run_cli(lambda: _extract_command(args), debug=args.debug)


def _extract_command(args) -> None:
    spec = get_spec(args.model, **dict(args.override))
    fmt = args.format or spec.input
    catalog = load_catalog(DataConfig(dataset=args.dataset, root=args.data_root, vocabulary=args.vocabulary))
    catalog, manifest = validate(catalog)
    splits = {s: catalog.split(s) for s in args.splits.split(",") if s}
    index = extract(
        splits, spec, fmt, args.out, shards=args.shards, manifest=manifest, tags=catalog.tags,
        dataset=args.dataset, model=args.model, threads=args.threads,
    )  # fmt: skip
    log.info("wrote %s records to %s: %s", fmt, args.out, index["counts"])
