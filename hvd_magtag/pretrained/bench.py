"""Tagging speed of an imported musicnn model against musicnn's own ``top_tags`` loop, side by side in one run.

    python -m hvd_magtag.pretrained.bench --musicnn-python /path/to/musicnn-venv/bin/python \
        --clips tests/fixtures/musicnn/clips [--model MTT_musicnn] [--files 8] [--rounds 2] [--out DIR]

musicnn 0.1.0's code needs tf-keras (``TF_USE_LEGACY_KERAS=1``) and librosa, so it runs in its own interpreter
(a scratch venv: ``pip install "numpy<2" tensorflow-cpu==2.16.2 tf-keras==2.16.0 librosa`` then
``pip install --no-deps musicnn==0.1.0``), given by ``--musicnn-python``. Both sides tag the same folder of
30 s, 44.1 kHz stereo mp3s (written once with ffmpeg from the recordings in ``--clips``, looped to 30 s): ours with ``hvd_magtag.Tagger(model).tag_many(files)`` (decode, resample, windows, log-mel and model
in graph; model loaded once, first call warmed up outside the timing), musicnn's with
``musicnn.tagger.top_tags(file, model=...)`` per file, as its README does (it rebuilds the TF1 graph, restores
the checkpoint and resamples with librosa for every file). Rounds alternate the two so machine load hits both;
the table reports clips/s per round and the ratio of the means. Prints a table and writes ``bench_musicnn.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hvd_magtag.pretrained import lookup

CLIP_SECONDS = 30
SOURCE_RATE = 44100

#: Run by --musicnn-python: times musicnn.tagger.top_tags over the files given on the command line.
_MUSICNN_LOOP = r"""
import json, sys, time
from musicnn.tagger import top_tags
model, files = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
for f in files:
    top_tags(f, model=model, topN=5, print_tags=False)
print(json.dumps({"seconds": time.perf_counter() - t0, "files": len(files)}))
"""


def make_files(clips_dir: Path, folder: Path, n: int) -> list[Path]:
    """``n`` 30 s 44.1 kHz stereo 128 kbit/s mp3s in ``folder``, looped from the audio files of ``clips_dir``
    (ffmpeg)."""
    clips = sorted(p for p in clips_dir.glob("*") if p.suffix.lower() in (".flac", ".wav", ".mp3", ".ogg"))
    if not clips:
        raise SystemExit(f"--clips {clips_dir}: no audio files (flac, wav, mp3, ogg) there")
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg not found; install it: apt-get install -y ffmpeg")
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        src = clips[i % len(clips)]
        dst = folder / f"{i:03d}_{src.stem}.mp3"
        if not dst.is_file():
            subprocess.run(
                ["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(src), "-t", str(CLIP_SECONDS),
                 "-ar", str(SOURCE_RATE), "-ac", "2", "-b:a", "128k", str(dst)],
                check=True,
            )  # fmt: skip
        out.append(dst)
    return out


def time_ours(tagger, files: list[Path]) -> float:
    t0 = time.perf_counter()
    results = tagger.tag_many([str(f) for f in files], workers=2)
    seconds = time.perf_counter() - t0
    failed = [r for r in results if not hasattr(r, "clip")]
    if failed:
        raise SystemExit(f"hvd_magtag failed on {failed[0]}")
    return len(files) / seconds


def time_musicnn(python: str, model: str, files: list[Path]) -> float:
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run(
        [python, "-c", _MUSICNN_LOOP, model, *map(str, files)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"musicnn loop failed ({python}): {out.stderr.strip().splitlines()[-1:]}")
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    return doc["files"] / doc["seconds"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hvd_magtag.pretrained.bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--musicnn-python", required=True, help="interpreter of a venv with musicnn + tf-keras"
    )
    parser.add_argument(
        "--clips",
        type=Path,
        required=True,
        help="folder of recordings to loop into 30 s mp3s (tests/fixtures/musicnn/clips)",
    )
    parser.add_argument("--model", default="MTT_musicnn", help="pretrained name (default: MTT_musicnn)")
    parser.add_argument("--files", type=int, default=8, help="30 s mp3 files per round (default: 8)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of each side (default: 2)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the mp3s and the JSON")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_musicnn."))
    files = make_files(args.clips, out / "mp3", args.files)

    from hvd_magtag.tag import Tagger  # TensorFlow: --help and option errors answer without it

    entry = lookup(args.model)
    if entry is None:
        raise SystemExit(f"--model {args.model!r} is not a pretrained name")
    t0 = time.perf_counter()
    tagger = Tagger(args.model)
    load_seconds = time.perf_counter() - t0
    tagger.tag(str(files[0]))  # trace the graph functions once
    ours, theirs = [], []
    for _ in range(args.rounds):
        ours.append(time_ours(tagger, files))
        theirs.append(time_musicnn(args.musicnn_python, entry.name, files))
        print(
            f"round: hvd_magtag {ours[-1]:.3f} clips/s, musicnn top_tags {theirs[-1]:.3f} clips/s", flush=True
        )
    ratio = statistics.mean(ours) / statistics.mean(theirs)
    result = {
        "model": entry.key,
        "files": len(files),
        "clip_seconds": CLIP_SECONDS,
        "source": f"{SOURCE_RATE} Hz stereo mp3 128 kbit/s",
        "hvd_magtag_clips_per_s": ours,
        "musicnn_clips_per_s": theirs,
        "ratio": ratio,
        "hvd_magtag_load_seconds": load_seconds,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    (out / "bench_musicnn.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'':24s}{'clips/s (mean of rounds)':>26s}")
    print(f"{'hvd_magtag Tagger':24s}{statistics.mean(ours):>26.3f}")
    print(f"{'musicnn top_tags loop':24s}{statistics.mean(theirs):>26.3f}")
    print(
        f"ratio {ratio:.1f}x  (load average {os.getloadavg()[0]:.1f}; model load {load_seconds:.1f} s, excluded)"
    )
    print(out / "bench_musicnn.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
