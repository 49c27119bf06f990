"""The synthetic MTAT-layout dataset: layout, CSV bytes, determinism, broken files, label statistics, and
that the tags are audible (tempo, singer pitch, loudness measured on the rendered audio)."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from scipy.stats import spearmanr

from hvd_magtag.data import synth
from hvd_magtag.data.mtat import (
    MTAT_SAMPLE_RATE,
    load_tag_columns_188,
    load_top50_frequency,
    load_top50_tags,
    read_annotations,
)

PATH_RE = re.compile(r"^([0-9a-f])/([a-z_]+)-([a-z_]+)-(\d\d)-([a-z_]+)-(\d+)-(\d+)\.mp3$")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """24 one-second clips, 3 of them broken, written in this process."""
    out = tmp_path_factory.mktemp("synth")
    summary = synth.generate(out, 24, seconds=1.0, seed=7, workers=1, broken_rate=0.1)
    return out, summary


def test_layout_and_csv_bytes(tiny):
    out, summary = tiny
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == list("0123456789abcdef")
    raw = (out / "annotations_final.csv").read_bytes()
    lines = raw.split(b"\r\n")
    assert lines[-1] == b"" and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF everywhere, no bare LF
    rows = [line.split(b"\t") for line in lines[:-1]]
    assert len(rows) == 1 + 24
    for row in rows:
        assert len(row) == 190
        assert all(len(f) >= 2 and f[:1] == b'"' and f[-1:] == b'"' for f in row)  # every field quoted
    header = [f[1:-1].decode() for f in rows[0]]
    assert header == ["clip_id", *load_tag_columns_188(), "mp3_path"]
    assert all(f in (b'"0"', b'"1"') for row in rows[1:] for f in row[1:-1])

    columns, ids, paths, labels = read_annotations(out / "annotations_final.csv")  # the real reader
    assert columns == load_tag_columns_188() and labels.shape == (24, 188)
    ids = [int(i) for i in ids]
    assert ids == sorted(ids) and len(set(ids)) == 24
    assert max(np.diff(ids)) > 1  # not contiguous, like MTAT
    for p in paths:
        m = PATH_RE.match(p)
        assert m, p
        assert int(m.group(7)) - int(m.group(6)) == 29
        assert (out / p).is_file()
    assert summary.broken == 2 or summary.broken == 3
    info = (out / "clip_info_final.csv").read_bytes().split(b"\r\n")
    assert info[0].split(b"\t")[0] == b'"clip_id"' and len(info) == 1 + 24 + 1


def test_broken_files_are_listed_and_empty(tiny):
    out, summary = tiny
    _, _, paths, _ = read_annotations(out / "annotations_final.csv")
    sizes = [(out / p).stat().st_size for p in paths]
    assert sum(s == 0 for s in sizes) == summary.broken > 0
    assert min(s for s in sizes if s) > 1000
    plans, _ = synth.plan_dataset(200, seed=3)
    assert sum(p.broken for p in plans) >= 1  # at least one broken clip from N = 200 on
    plans, _ = synth.plan_dataset(200, seed=3, broken_rate=0.0)
    assert not any(p.broken for p in plans)


def test_mp3_is_16k_mono(tiny):
    import tensorflow_io as tfio

    out, _ = tiny
    _, _, paths, _ = read_annotations(out / "annotations_final.csv")
    path = next(str(out / p) for p in paths if (out / p).stat().st_size)
    audio = tfio.audio.AudioIOTensor(path)
    assert int(audio.rate) == MTAT_SAMPLE_RATE == synth.SR
    x = audio.to_tensor().numpy()
    assert x.shape[1] == 1
    assert abs(x.shape[0] - MTAT_SAMPLE_RATE) < 0.15 * MTAT_SAMPLE_RATE  # 1 s plus the encoder's padding
    assert 0.01 < np.sqrt(np.mean(x**2)) < 0.5


def test_reuse_refuse_and_overwrite(tiny, tmp_path):
    out, _ = tiny
    again = synth.generate(out, 24, seconds=1.0, seed=7, workers=1, broken_rate=0.1)
    assert again.reused
    with pytest.raises(FileExistsError, match="--overwrite"):
        synth.generate(out, 25, seconds=1.0, seed=7, workers=1)
    with pytest.raises(ValueError, match="--clips"):
        synth.plan_dataset(0)
    first = synth.generate(tmp_path, 5, seconds=0.5, seed=1, workers=1, broken_rate=0.0)
    second = synth.generate(tmp_path, 3, seconds=0.5, seed=2, workers=1, broken_rate=0.0, overwrite=True)
    assert not first.reused and not second.reused
    _, _, paths, _ = read_annotations(tmp_path / "annotations_final.csv")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.glob("?/*")) == sorted(
        paths
    )  # no stale clips


def test_deterministic_for_any_worker_count(tmp_path):
    one = synth.generate(tmp_path / "one", 6, seconds=0.6, seed=11, workers=1, broken_rate=0.0)
    two = synth.generate(tmp_path / "two", 6, seconds=0.6, seed=11, workers=2, broken_rate=0.0)
    assert (one.workers, two.workers) == (1, 2)
    for name in ("annotations_final.csv", "clip_info_final.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    _, _, paths, _ = read_annotations(tmp_path / "one" / "annotations_final.csv")
    for p in paths:
        assert (tmp_path / "one" / p).read_bytes() == (tmp_path / "two" / p).read_bytes()
    a, _ = synth.plan_dataset(50, seed=11)
    b, _ = synth.plan_dataset(50, seed=12)
    assert [p.tag_sources for p in a] != [p.tag_sources for p in b]
    x1, _ = synth.render(a[0], 0.5, seed=11)
    x2, _ = synth.render(a[0], 0.5, seed=11)
    x3, _ = synth.render(a[0], 0.5, seed=12)
    assert np.array_equal(x1, x2) and not np.array_equal(x1, x3)


def test_label_frequencies_follow_mtat():
    plans, _ = synth.plan_dataset(3000, seed=0)
    top50 = load_top50_tags()
    real = load_top50_frequency()
    y = synth.label_matrix(plans, top50)
    share = y.mean(0)
    assert spearmanr(share, [real[t] for t in top50]).correlation > 0.8
    # the five most frequent real tags are among the twelve most frequent synthetic ones
    synthetic_top = {top50[j] for j in np.argsort(-share)[:12]}
    assert {"guitar", "classical", "slow", "techno", "rock"} <= synthetic_top
    none = (y.sum(1) == 0).mean()
    assert 0.05 < none < 0.35  # real MTAT: ~18 % of clips carry no top-50 tag
    col = {t: j for j, t in enumerate(top50)}
    female, woman = y[:, col["female"]] == 1, y[:, col["woman"]] == 1
    assert woman[female].mean() > 0.3 and woman[~female].mean() < 0.1  # synonyms co-occur ...
    assert (
        y[:, [col[t] for t in ("female", "woman", "female vocal", "female voice")]].sum(1) == 4
    ).mean() < 0.02
    # ... but rarely all four
    y188 = synth.label_matrix(plans, load_tag_columns_188())
    top_set = set(top50)
    others = [j for j, t in enumerate(load_tag_columns_188()) if t not in top_set]
    assert y188[:, others].any(1).mean() > 0.05  # some non-top-50 tags are set


def test_tags_come_from_what_is_played():
    plans, _ = synth.plan_dataset(1500, seed=5)
    for p in plans:
        tags = {t: s for t, s in p.tag_sources if s != "noise"}  # "noise" = documented spurious tag
        if "fast" in tags:
            assert p.bpm >= synth.FAST_BPM
        if "slow" in tags:
            assert p.bpm <= synth.SLOW_BPM
        if "sitar" in tags:
            assert "sitar" in p.instruments
        if "harpsichord" in tags:
            assert "harpsichord" in p.instruments
        if {"female", "woman", "male", "man", "choir", "opera"} & set(tags):
            assert p.voice
        if {"no vocals", "no vocal", "no voice"} & set(tags):
            assert not p.voice
        if "loud" in tags:
            assert p.level == "loud"
    noisy = sum(any(s == "noise" for _, s in p.tag_sources) for p in plans) / len(plans)
    assert noisy < 3 * synth.LABEL_ADD


def _onset_rate(x: np.ndarray) -> float:
    """Onsets per second: local maxima (±30 ms) of band-wise log spectral flux (40-ms frames, 10-ms hop) after
    removing its 0.5-s moving median, above a quarter of its 99th percentile."""
    from scipy.ndimage import maximum_filter, median_filter

    hop, win = synth.SR // 100, synth.SR // 25
    n = (len(x) - win) // hop
    frames = x[np.arange(win)[None, :] + hop * np.arange(n)[:, None]] * np.hanning(win)
    spec = np.abs(np.fft.rfft(frames, axis=1))[:, : win // 2].reshape(n, 32, -1).sum(2)
    flux = np.maximum(np.diff(np.log1p(100 * spec), axis=0), 0).sum(1)
    flux -= median_filter(flux, 51)
    peaks = (flux > 0.25 * np.percentile(flux, 99)) & (flux == maximum_filter(flux, 7))
    return peaks.sum() / (len(x) / synth.SR)


def _f0(x: np.ndarray) -> float:
    """Median autocorrelation pitch (Hz, 70-900 Hz) over the loudest 40-ms frames."""
    frame = int(0.04 * synth.SR)
    frames = x[: len(x) // frame * frame].reshape(-1, frame)
    frames = frames[np.argsort(-(frames**2).sum(1))[: max(3, len(frames) // 3)]]
    lags = np.arange(synth.SR // 900, synth.SR // 70)
    f0s = []
    for f in frames:
        f = f - f.mean()
        ac = np.correlate(f, f, "full")[frame - 1 :]
        f0s.append(synth.SR / lags[np.argmax(ac[lags])])
    return float(np.median(f0s))


def test_tempo_singer_and_loudness_are_audible():
    plans, _ = synth.plan_dataset(400, seed=2, broken_rate=0.0)
    # the same scene played at a "fast" and at a "slow" tempo: more onsets per second (melodic scenes as they
    # are; band scenes by their drums, whose onsets a simple detector finds under distorted guitars too)
    for genre in ("classical", "indian", "acoustic", "rock", "techno"):
        plan = next(p for p in plans if p.genre == genre)
        if plan.drums:
            plan = dataclasses.replace(plan, instruments=(), voice="")
        rate = {
            t: _onset_rate(synth.render(dataclasses.replace(plan, bpm=bpm), 4.0, 2)[0])
            for t, bpm in (("fast", synth.FAST_BPM + 10), ("slow", synth.SLOW_BPM - 10))
        }
        assert rate["fast"] > 1.5 * rate["slow"], (genre, plan.instruments, rate)

    base = next(p for p in plans if p.genre == "pop")
    pitch = {}
    for kind in ("female", "male"):
        solo_voice = dataclasses.replace(base, instruments=(), drums="", voice=kind, reverb=0.0)
        pitch[kind] = np.median([_f0(synth.render(solo_voice, 3.0, s)[0]) for s in range(3)])
    assert pitch["female"] > 1.4 * pitch["male"], pitch
    assert 150 < pitch["female"] < 800 and 70 < pitch["male"] < 350, pitch

    loud = dataclasses.replace(base, level="loud", level_db=synth.LEVEL_DBFS["loud"])
    quiet = dataclasses.replace(base, level="quiet", level_db=synth.LEVEL_DBFS["quiet"])
    rms = {
        k: np.sqrt(np.mean(synth.render(p, 2.0, 0)[0] ** 2)) for k, p in (("loud", loud), ("quiet", quiet))
    }
    assert 20 * np.log10(rms["loud"] / rms["quiet"]) > 12, rms


def test_every_rule_names_an_mtat_column():
    rules = [
        *(g.tags for g in synth.GENRES.values()),
        *synth.VOICE_GENRE_TAGS.values(),
        *synth.TAG_RULES.values(),
        *synth.ACCOMPANIMENT_RULES.values(),
        *(r for pair in synth.KIT_TAGS.values() for r in pair),
        *synth.VOICE_TAGS.values(),
        synth.NO_VOCAL_TAGS,
        synth.NO_VOCAL_EXTRA,
        *synth.TEMPO_TAGS.values(),
        *synth.LEVEL_TAGS.values(),
    ]
    named = {t for rule in rules for t, _ in rule} | {
        "beats",
        "dance",
        "soft",
        "solo",
        "piano solo",
        "classic",
    }
    named |= {"choral"}
    assert named - set(load_tag_columns_188()) == set()
    assert set(load_top50_tags()) <= named  # every top-50 tag can be produced


def test_cli_writes_to_the_default_synthetic_folder_without_out(tmp_path, monkeypatch):
    monkeypatch.setenv("HVD_MAGTAG_DATA", str(tmp_path))
    assert synth.main(["--clips", "2", "--seconds", "0.5", "--workers", "1", "--broken-rate", "0"]) == 0
    _, ids, paths, _ = read_annotations(tmp_path / "synthetic" / "annotations_final.csv")
    assert len(ids) == 2 and all((tmp_path / "synthetic" / p).stat().st_size > 0 for p in paths)
