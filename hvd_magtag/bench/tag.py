"""Tagging benchmark: ``python -m hvd_magtag.bench tag [--model RUN_DIR] [--clips 16] [--workers 2] [--hour-minutes 60]
[--library-files 64] [--precision float32|bfloat16] [--compare NAME]``.

The model is ``--model`` (a run directory or an export folder) or, by default, a freshly initialised model at
the demo's settings (the packaged ``demo`` config: registry name and overrides; 50 MTAT tags) written to a
temporary run directory, so the numbers are those of the real ``Tagger`` path.

Rows (synthetic music-like audio: a few harmonic tones and noise, written as mp3 in a temporary folder),
all measured in one run so that their ratios hold on a shared machine:

- ``model alone``: windows/s and 30 s clips/s of the model on pre-cut windows (``Tagger.predict_windows``),
  in float32 and bfloat16 (run directories), and the largest bfloat16 - float32 window probability;
- ``decode alone`` (1 thread): 30 s clips/s through decode + downmix + resample + windowing only
  (``Tagger.window_chunks``, one file after another), for 16 kHz mono mp3 (MTAT-like) and 44.1 kHz stereo
  mp3 (a user's song), with its CPU milliseconds per clip;
- ``end-to-end``: 30 s clips/s of ``Tagger.tag_many`` over ``--clips`` files with ``--workers`` decoding
  threads, and its ratio to the slower of decode alone and model alone (target :data:`TARGET_OVERLAP`);
- ``CPU-bound ceiling``: cores / (decode + model CPU seconds per clip): what any overlap could reach;
- ``library``: ``--library-files`` 30 s files tagged as a library job (``python -m hvd_magtag.tag LIBRARY
  --out DIR``, manifest scan + tagging, start-up excluded) by 1 rank x 1 thread and 2 ranks x 1 thread, each
  rank bound to a core, and the machine's ceiling for 2 ranks (two independent 1-process jobs started
  together, half the files and one core each), ``--iters`` rounds of the three in turn: files/s
  (mean ± std), wall time, peak memory per rank, and the speed-ups of the means (target
  :data:`TARGET_SCALING` for np=2 over np=1);
- ``compare NAME`` (``--compare``): another tagger registered in :data:`COMPARISONS` on the same 44.1 kHz
  files, and our end-to-end speed over it (target :data:`TARGET_COMPARISON`);
- ``memory``: peak RSS (MB) of a fresh process after loading the model (baseline) and after tagging a 30 s
  file and a ``--hour-minutes``-long 16 kHz mono mp3 (generated piece by piece; the file is streamed in
  segments, so its peak should stay close to the 30 s one), then the same file decoded and tagged whole in
  one call of the exported ``from_bytes`` (the contrast), plus the streamed tagging speed (x real time).

Wall-clock means over ``--iters`` runs after one warm-up. On a shared CPU the numbers are noisy.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from hvd_magtag import distributed, jobs
from hvd_magtag.audio import format_of
from hvd_magtag.bench import row, timed
from hvd_magtag.config import Experiment
from hvd_magtag.demo import DEMO_CONFIG_NAME
from hvd_magtag.models.registry import create_model
from hvd_magtag.pretrained import MUSICNN_INSTALL, resolve_model
from hvd_magtag.rundir import RunDir

BENCH = "tag"
#: length (s) of the clips whose throughput is reported (an MTAT clip is ~29 s)
CLIP_SECONDS = 30.0
#: the two input kinds benchmarked: (case name, sample rate Hz, channels)
INPUT_KINDS = (("16k-mono-mp3", 16000, 1), ("44k-stereo-mp3", 44100, 2))
#: end to end >= this x the slower of decode alone and model alone (issue 19)
TARGET_OVERLAP = 0.9
#: library tagging, 2 ranks x 1 thread >= this x 1 rank x 1 thread
TARGET_SCALING = 1.8
#: our end-to-end >= this x a comparison case's clips/s (issue 19, with the pretrained models)
TARGET_COMPARISON = 20.0
#: musicnn's own code runs under TensorFlow 2.16 with the legacy Keras 2 package, installed with --no-deps
#: (its metadata asks for the ``tensorflow`` distribution; ``tensorflow-cpu`` is the one installed)
TF_KERAS_REQUIREMENT = "tf-keras==2.16.0"
#: Seconds musicnn's ``top_tags`` loop over the comparison files may take.
COMPARISON_TIMEOUT = 3600
#: Timed in a subprocess: musicnn.tagger.top_tags on every file, one after another, after one untimed call.
_MUSICNN_LOOP = """
import json, sys, time
from musicnn.tagger import top_tags
model, files = sys.argv[1], sys.argv[2:]
top_tags(files[0], model=model, topN=3, print_tags=False)
t0 = time.perf_counter()
for f in files:
    top_tags(f, model=model, topN=3, print_tags=False)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def musicnn_top_tags(files: list, model_path: Path) -> float:
    """30 s clips/s of musicnn's own ``top_tags(file, model, topN=3)`` loop (``python -m musicnn.tagger``:
    librosa features, its TF1 graph rebuilt per file) with the released model ``model_path`` was imported from
    (``python -m hvd_magtag.pretrained import musicnn:NAME``), in a fresh interpreter with
    ``TF_USE_LEGACY_KERAS=1``."""

    source = (RunDir(model_path).info.get("pretrained") or {}).get("source", "")
    if not source.startswith("musicnn:"):
        raise SystemExit(
            f"error: --compare musicnn needs --model MTT_musicnn (an imported musicnn model), got {model_path}"
        )
    missing = [req for mod, req in (("musicnn", MUSICNN_INSTALL), ("tf_keras", f"pip install --no-deps {TF_KERAS_REQUIREMENT}"),
               ("librosa", "pip install librosa")) if importlib.util.find_spec(mod) is None]  # fmt: skip
    if missing:
        raise SystemExit(f"error: --compare musicnn needs musicnn's own code: {'; '.join(missing)}")
    env = {"TF_USE_LEGACY_KERAS": "1"}  # musicnn builds its graph with tf.compat.v1 layers (Keras 2)
    done = jobs.run([sys.executable, "-c", _MUSICNN_LOOP, source.split(":", 1)[1], *map(str, files)],
                    timeout=COMPARISON_TIMEOUT, env=env)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"musicnn top_tags loop failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return len(files) / json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


#: Comparison cases for ``--compare NAME``: NAME -> fn(files, model_path) -> clips/s of that other tagger on
#: the same 44.1 kHz stereo files with the same model.
COMPARISONS = {"musicnn": musicnn_top_tags}
#: seconds a library job of the scaling case may take
LIBRARY_TIMEOUT = 1800
#: seconds of audio encoded per piece when writing the long file (bounds the generator's memory)
LONG_FILE_PIECE_SECONDS = 60

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="run directory or export folder (default: demo model)")
    parser.add_argument("--clips", type=int, default=8, help="30 s clips per throughput case (default: 8)")
    parser.add_argument("--workers", type=int, default=2, help="reader threads for end-to-end (default: 2)")
    parser.add_argument("--iters", type=int, default=2, help="timed repetitions (default: 2)")
    parser.add_argument(
        "--precision",
        default="float32",
        choices=("float32", "bfloat16"),
        help="the tagger's (default: float32)",
    )
    parser.add_argument(
        "--library-files",
        type=int,
        default=64,
        help="30 s files of the library tagged by 1 rank x 1 thread and 2 ranks x 1 thread (default: 64; 0 = skip)",
    )
    parser.add_argument(
        "--compare", default="", help=f"a comparison case ({', '.join(COMPARISONS) or 'none registered'})"
    )
    parser.add_argument(
        "--hour-minutes",
        type=float,
        default=60.0,
        help="length of the long file in minutes (default: 60; 0 = skip)",
    )


def music_like(seconds: float, rate: int, channels: int, seed: int):
    """float32 ``[samples, channels]``: three harmonic tones with a slow envelope plus noise, in [-1, 1]."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    x = np.zeros_like(t)
    for f in rng.uniform(80, 1200, 3):
        for h in (1, 2, 3):
            x += np.sin(2 * np.pi * f * h * t + rng.uniform(0, 6.3)) / (3 * h)
    x *= 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.2, 2.0) * t) ** 2
    x = 0.25 * x + 0.02 * rng.standard_normal(t.size)
    out = np.stack([x * (1.0 - 0.2 * c) for c in range(channels)], axis=1)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def write_mp3(path: Path, samples, rate: int) -> Path:
    """An mp3 of float32 ``samples [samples, channels]`` at ``rate`` Hz as a user's encoder writes it: LAME
    (PyAV's libmp3lame) at MTAT's 32 kbit/s for mono, 128 kbit/s for stereo, with LAME's Info header."""
    import av
    import numpy as np

    samples = np.asarray(samples, np.float32)
    channels = samples.shape[1]
    with av.open(str(path), "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=rate, layout="mono" if channels == 1 else "stereo")
        stream.bit_rate = 32000 if channels == 1 else 128000
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples.T), format="fltp", layout=stream.layout
        )
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return path


def write_long_mp3(path: Path, minutes: float, rate: int = 16000) -> Path:
    """A ``minutes``-long mono mp3 written as concatenated pieces (mp3 frames concatenate)."""
    seconds = minutes * 60.0
    with open(path, "wb") as f:
        done, i = 0.0, 0
        while done < seconds:
            piece = min(LONG_FILE_PIECE_SECONDS, seconds - done)
            f.write(_encoded(music_like(piece, rate, 1, seed=1000 + i), rate))
            done, i = done + piece, i + 1
    return path


def _encoded(samples, rate: int) -> bytes:
    import tensorflow_io as tfio

    return tfio.audio.encode_mp3(samples, rate=rate).numpy()


def demo_run(folder: Path) -> tuple[Path, str]:
    """A run directory with a freshly initialised model at the demo's settings; returns (path, description)."""
    from hvd_magtag.data.mtat import load_top50_tags

    model_cfg = Experiment.load(DEMO_CONFIG_NAME).model
    tags = load_top50_tags()
    model = create_model(model_cfg.name, n_tags=len(tags), **model_cfg.overrides)
    run = RunDir(folder / "demo-model")
    run.best_weights.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(run.best_weights))
    run.write_run_info(
        {
            "model": model_cfg.name,
            "overrides": dict(model_cfg.overrides),
            "spec": model.spec.to_dict(),
            "tags": tags,
        }
    )
    overrides = ",".join(f"{k}={v}" for k, v in model_cfg.overrides.items())
    return run.path, f"{model_cfg.name}({overrides}) {model.count_params():,} params"


class RssSampler:
    """Peak resident set size (MB) of this process while the ``with`` block runs, sampled every
    ``interval`` seconds by a background thread (psutil), plus the RSS when the block starts."""

    def __init__(self, interval: float = 0.02):
        import psutil

        self._process = psutil.Process()
        self.interval = interval
        self.start_mb = self.peak_mb = 0.0

    def _rss_mb(self) -> float:
        return self._process.memory_info().rss / 2**20

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            self.peak_mb = max(self.peak_mb, self._rss_mb())

    def __enter__(self) -> RssSampler:

        self.start_mb = self.peak_mb = self._rss_mb()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss_mb())


def measure_rss(model: str, files: list[str], whole_last: bool = True) -> dict:
    """In THIS process: load ``model``, warm up, then tag ``files`` one after another with ``Tagger.tag``
    and, if ``whole_last``, the last file again with the exported ``from_bytes`` (whole file in one graph
    call: the contrast to streaming). Returns the RSS (MB) after loading and the peak RSS during each step
    (:class:`RssSampler`). Run it in a fresh process (see ``run``) so nothing else inflates the numbers."""

    import numpy as np

    from hvd_magtag.tag import Tagger  # TensorFlow: --help and option errors answer without it

    tagger = Tagger(model)
    tagger.predict_windows(np.zeros((1, tagger.window_samples), np.float32))  # trace the graph
    with RssSampler() as idle:
        time.sleep(0.2)
    out = {"baseline_mb": idle.peak_mb, "files": []}
    for path in files:
        t0 = time.perf_counter()
        with RssSampler() as rss:
            result = tagger.tag(path)
        out["files"].append(
            {
                "path": path,
                "peak_mb": rss.peak_mb,
                "seconds": time.perf_counter() - t0,
                "audio_seconds": result.duration,
                "windows": int(result.taggram.shape[0]),
            }
        )
    if whole_last and files:
        t0 = time.perf_counter()
        with RssSampler() as rss:
            whole = tagger.module.from_bytes(Path(files[-1]).read_bytes(), format_of(files[-1]))
        out["whole_file"] = {
            "path": files[-1],
            "peak_mb": rss.peak_mb,
            "seconds": time.perf_counter() - t0,
            "windows": int(whole["taggram"].shape[0]),
        }
    return out


def _timed_cpu(fn, iters: int) -> tuple[float, float, float]:
    """(mean wall s, spread, CPU s of this process per call) of ``fn`` after one warm-up (tracing) call."""

    fn()
    c0 = time.process_time()
    mean, sd = timed(fn, warmup=0, iters=iters)
    return mean, sd, (time.process_time() - c0) / iters


def _model_rows(
    tagger, precisions: dict, windows_per_clip: int, iters: int, common: dict
) -> tuple[list, dict]:
    """Model alone on pre-cut windows, per precision: rows, and {precision: (clips/s, CPU s per clip)}."""
    import numpy as np

    windows = np.random.default_rng(0).standard_normal((windows_per_clip * 2, tagger.window_samples))
    windows = (0.1 * windows).astype(np.float32)
    rows, rates = [], {}
    for precision, t in precisions.items():
        mean, sd, cpu = _timed_cpu(lambda t=t: t.predict_windows(windows), iters)
        n = len(windows)
        case = f"model alone {precision} (pre-cut windows)"
        rows.append(row(BENCH, case, "windows/s", n / mean, "windows/s", n * sd / mean**2, **common))
        rows.append(row(BENCH, case, "30s clips/s", n / mean / windows_per_clip, "clips/s", **common))
        rates[precision] = (n / mean / windows_per_clip, cpu * windows_per_clip / n)
    return rows, rates


def _clip_rows(tagger, files: list, case: str, model_rate: tuple, args, common: dict) -> list[dict]:
    """Decode alone (one thread, as a file is read), end to end (``--workers`` decoding threads feeding the
    model) and their ratio to the slower stage, for one kind of clip."""

    def decode_all() -> None:
        for f in files:
            for _ in tagger.window_chunks(f):
                pass

    def tag_all() -> None:
        bad = [r for r in tagger.tag_many(files, workers=args.workers) if not hasattr(r, "clip")]
        if bad:
            raise RuntimeError(f"bench clip failed to tag: {bad[0]}")

    k = len(files)
    d_mean, d_sd, d_cpu = _timed_cpu(decode_all, args.iters)
    e_mean, e_sd, _ = _timed_cpu(tag_all, args.iters)
    decode_rate, e2e_rate = k / d_mean, k / e_mean
    slower = min(decode_rate, model_rate[0])
    cores = distributed.available_cores()
    ceiling = cores / (d_cpu / k + model_rate[1])  # every core busy, no overhead
    return [
        row(BENCH, f"decode alone {case} (1 thread)", "30s clips/s", decode_rate, "clips/s", k * d_sd / d_mean**2,
            cpu_ms_per_clip=round(1000 * d_cpu / k, 1), **common),
        row(BENCH, f"end-to-end {case} workers={args.workers}", "30s clips/s", e2e_rate, "clips/s",
            k * e_sd / e_mean**2, **common),
        row(BENCH, f"end-to-end / slower stage {case}", "ratio", e2e_rate / slower, "x", target=TARGET_OVERLAP,
            meets_target=bool(e2e_rate / slower >= TARGET_OVERLAP), **common),
        row(BENCH, f"CPU-bound ceiling {case} ({cores} cores)", "30s clips/s", ceiling, "clips/s",
            note="cores / (decode + model CPU seconds per clip)", **common),
    ]  # fmt: skip


def _bf16_agreement(fp32, bf16, rates: dict, common: dict) -> dict:
    """Largest |bfloat16 - float32| window probability on a music-like clip (and the speed ratio)."""
    from hvd_magtag.audio import tail_padded_windows  # TensorFlow: not for --help

    windows = tail_padded_windows(
        music_like(CLIP_SECONDS, fp32.spec.sample_rate, 1, seed=99)[:, 0],
        fp32.spec.window,
        fp32.reader.context,
    ).numpy()
    diff = abs(bf16.predict_windows(windows)["taggram"] - fp32.predict_windows(windows)["taggram"]).max()
    speed = rates["bfloat16"][0] / rates["float32"][0]
    return row(BENCH, "model bfloat16 vs float32", "max |dp| per window", float(diff), "prob",
               speed_ratio=round(speed, 3), **common)  # fmt: skip


def _comparison_rows(name: str, files: list, model_path: Path, tagger, common: dict) -> list[dict]:
    if name not in COMPARISONS:
        raise SystemExit(
            f"error: --compare {name!r}: registered cases are {', '.join(COMPARISONS) or 'none'}"
        )
    theirs = COMPARISONS[name](files, model_path)
    mean, _ = timed(lambda: tagger.tag_many(files), warmup=1, iters=1)
    ours = len(files) / mean
    return [
        row(BENCH, f"compare {name} (44.1 kHz stereo)", "30s clips/s", theirs, "clips/s", **common),
        row(BENCH, f"end-to-end / {name}", "ratio", ours / theirs, "x", target=TARGET_COMPARISON,
            meets_target=bool(ours / theirs >= TARGET_COMPARISON), **common),
    ]  # fmt: skip


def _tag_command(model_path: Path, library: Path, out: Path) -> list:
    return [sys.executable, "-m", "hvd_magtag.tag", str(library), "--model", str(model_path),
            "--out", str(out), "--quiet", "--threads", "1", "--workers", "1"]  # fmt: skip


def files_per_s(runs: list[dict]) -> float:
    """Library files/s of jobs that ran together (summary.json ``this_run`` of each): files tagged over the
    longest scan + tag (start-up excluded)."""
    return sum(r["tagged"] for r in runs) / max(r["scan_seconds"] + r["tag_seconds"] for r in runs)


def _job_run(out: Path, done_returncode: int, output: str, label: str) -> dict:
    if done_returncode != 0:
        raise RuntimeError(f"library job {label} failed (exit {done_returncode}): {output[-2000:]}")
    return json.loads((out / "summary.json").read_text())["this_run"]


def library_job(model_path: Path, library: Path, out: Path, np_ranks: int) -> dict:
    """``horovodrun -np N python -m hvd_magtag.tag LIBRARY --out OUT`` with one thread per rank, each rank
    bound to its own core; the job's summary.json ``this_run``."""
    launcher = jobs.horovodrun(np_ranks, launcher_args=["--binding-args=-bind-to core -map-by core"])
    done = jobs.run([*launcher, *_tag_command(model_path, library, out)], timeout=LIBRARY_TIMEOUT, threads=1,
                    merge_output=True)  # fmt: skip
    return _job_run(out, done.returncode, done.stdout, f"np={np_ranks}")


def pair_job(model_path: Path, halves: list[Path], outs: list[Path]) -> float:
    """The machine's own ceiling for 2 ranks: two independent 1-process jobs (no Horovod), one per half of the
    library, started together, each pinned to its own core; their :func:`files_per_s`."""
    cores = sorted(os.sched_getaffinity(0))

    def pinned(core):
        return lambda: os.sched_setaffinity(0, {core})

    started = [
        jobs.start(_tag_command(model_path, half, out), threads=1, stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT, text=True, preexec_fn=pinned(cores[i % len(cores)]))
        for i, (half, out) in enumerate(zip(halves, outs))
    ]  # fmt: skip
    try:
        outputs = [job.proc.communicate(timeout=LIBRARY_TIMEOUT)[0] for job in started]
    finally:
        for job in started:
            job.kill()
    return files_per_s(
        [_job_run(out, job.proc.returncode, text, "pair") for out, job, text in zip(outs, started, outputs)]
    )


def scaling_rows(model_path: Path, tmp: Path, n_files: int, common: dict, repeats: int = 1) -> list[dict]:
    """Library tagging (scan + tag, after start-up) of ``n_files`` 30 s 16 kHz mono mp3s: 1 rank x 1 thread,
    2 ranks x 1 thread, and the machine's ceiling for the latter (:func:`pair_job`: two independent processes,
    half the files each, one per core), files/s (mean ± std of ``repeats`` rounds, each running the three in
    turn: this VM's rates drift by up to ~30 % between back-to-back jobs) and the ratios of the means; wall
    time and peak memory per rank of the last job of each."""
    import numpy as np

    library = tmp / "library"
    halves = [library / "a", library / "b"]
    for h in halves:
        h.mkdir(parents=True)
    for i in range(n_files):
        write_mp3(
            halves[i * 2 // n_files] / f"song{i:03d}.mp3",
            music_like(CLIP_SECONDS, 16000, 1, seed=500 + i),
            16000,
        )
    rates: dict = {1: [], 2: [], "pair": []}
    last: dict[int, dict] = {}
    for rep in range(repeats):
        for np_ranks in (1, 2):
            run = library_job(model_path, library, tmp / f"results-np{np_ranks}-{rep}", np_ranks)
            rates[np_ranks].append(files_per_s([run]))
            last[np_ranks] = run
        outs = [tmp / f"results-pair{k}-{rep}" for k in range(2)]
        rates["pair"].append(pair_job(model_path, halves, outs))
    rows = []
    for np_ranks, run in last.items():
        rows.append(row(BENCH, f"library {n_files} files np={np_ranks} x 1 thread", "files/s",
                        float(np.mean(rates[np_ranks])), "files/s", float(np.std(rates[np_ranks])),
                        jobs=repeats, wall_s=run["wall_seconds"], startup_s=run["startup_seconds"],
                        scan_s=run["scan_seconds"], tag_s=run["tag_seconds"],
                        peak_rss_mb_per_rank=run["peak_rss_mb_per_rank"], **common))  # fmt: skip
    rows.append(row(BENCH, f"library {n_files} files 2 independent processes x 1 thread", "files/s",
                    float(np.mean(rates["pair"])), "files/s", float(np.std(rates["pair"])), jobs=repeats,
                    note="half the files each, one core each, no Horovod: this machine's ceiling for np=2",
                    **common))  # fmt: skip
    ratio = float(np.mean(rates[2]) / np.mean(rates[1]))
    rows.append(row(BENCH, "library np=2 / np=1 (1 thread/rank)", "speed-up", ratio, "x", target=TARGET_SCALING,
                    meets_target=bool(ratio >= TARGET_SCALING), **common))  # fmt: skip
    ceiling = float(np.mean(rates["pair"]) / np.mean(rates[1]))
    rows.append(row(BENCH, "library 2 independent processes / np=1", "speed-up", ceiling, "x", **common))
    rows.append(row(BENCH, "library np=2 / 2 independent processes", "ratio",
                    float(np.mean(rates[2]) / np.mean(rates["pair"])), "x", **common))  # fmt: skip
    return rows


def run(args: argparse.Namespace) -> list[dict]:

    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="hvd_magtag_bench_tag_") as tmp_name:
        tmp = Path(tmp_name)
        if args.model:
            model_path, model_desc = resolve_model(args.model), str(args.model)  # a path or MTT_musicnn...
        else:
            model_path, model_desc = demo_run(tmp)
        from hvd_magtag.tag import Tagger  # TensorFlow: --help and option errors answer without it

        tagger = Tagger(model_path, precision=args.precision)
        precisions = {args.precision: tagger}
        if tagger.backend == "keras" and args.precision == "float32":
            precisions["bfloat16"] = Tagger(model_path, precision="bfloat16")
        spec = tagger.spec
        windows_per_clip = -(-int(CLIP_SECONDS * spec.sample_rate) // spec.window)
        log.info("model %s: window %d samples (%.2f s)", model_desc, spec.window, spec.window_seconds)
        common = {"model": model_desc, "window_s": round(spec.window_seconds, 3)}
        model_rows, rates = _model_rows(tagger, precisions, windows_per_clip, args.iters, common)
        rows += model_rows
        if "bfloat16" in precisions and args.precision == "float32":
            rows.append(_bf16_agreement(tagger, precisions["bfloat16"], rates, common))
        clip_files = {}
        for case, rate, channels in INPUT_KINDS:
            folder = tmp / case
            folder.mkdir()
            clip_files[case] = files = [
                write_mp3(folder / f"clip{i:03d}.mp3", music_like(CLIP_SECONDS, rate, channels, seed=i), rate)
                for i in range(args.clips)
            ]
            rows += _clip_rows(tagger, files, case, rates[args.precision], args, common)
        if args.compare:
            rows += _comparison_rows(args.compare, clip_files[INPUT_KINDS[1][0]], model_path, tagger, common)
        if args.library_files > 0:
            rows += scaling_rows(model_path, tmp, args.library_files, common, repeats=args.iters)
        if args.hour_minutes > 0:
            short = tmp / INPUT_KINDS[0][0] / "clip000.mp3"
            long_file = write_long_mp3(tmp / "long.mp3", args.hour_minutes)
            code = (
                "import json, sys; from hvd_magtag.bench.tag import measure_rss; "
                "print(json.dumps(measure_rss(sys.argv[1], sys.argv[2:])))"
            )
            proc = subprocess.run(
                [sys.executable, "-c", code, str(model_path), str(short), str(long_file)],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"RSS measurement process failed: {proc.stderr.strip().splitlines()[-1:]}")
            rss = json.loads(proc.stdout.strip().splitlines()[-1])
            (short_r, long_r) = rss["files"]
            label = f"{args.hour_minutes:g} min 16k mono mp3"
            rows.append(row(BENCH, "memory: model loaded", "peak RSS", rss["baseline_mb"], "MB", **common))
            rows.append(row(BENCH, "memory: + 30 s clip", "peak RSS", short_r["peak_mb"], "MB", **common))
            rows.append(
                row(
                    BENCH,
                    f"memory: + {label}",
                    "peak RSS",
                    long_r["peak_mb"],
                    "MB",
                    windows=long_r["windows"],
                    **common,
                )
            )
            whole = rss["whole_file"]
            rows.append(
                row(BENCH, "memory: + same, whole in graph", "peak RSS", whole["peak_mb"], "MB", **common)
            )
            rows.append(
                row(
                    BENCH,
                    f"speed: {label}",
                    "x real time",
                    long_r["audio_seconds"] / long_r["seconds"],
                    "x",
                    seconds=round(long_r["seconds"], 1),
                    **common,
                )
            )
    return rows
