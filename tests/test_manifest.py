"""Manifest: every kind of bad file is found with its reason, good files get rate/channels/duration, the JSON
cache is reused while size+mtime are unchanged, the report is written, read-only data falls back to cache_dir."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from hvd_magtag.audio import MP3_WARMUP_SAMPLES
from hvd_magtag.data import folder
from hvd_magtag.data import manifest as mf

RATE = 16000


def _tone(seconds: float, channels: int = 1, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    return np.stack([x] * channels, axis=1)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory) -> Path:
    """Good files of every format and one file of every kind of bad, all small."""
    import tensorflow as tf
    import tensorflow_io as tfio

    root = tmp_path_factory.mktemp("audio")
    mp3 = tfio.audio.encode_mp3(tf.constant(_tone(1.0)), rate=RATE).numpy()
    files = {
        "good/mono16k.mp3": mp3,
        "good/stereo44k.mp3": tfio.audio.encode_mp3(tf.constant(_tone(0.5, 2, 44100)), rate=44100).numpy(),
        "good/short.mp3": tfio.audio.encode_mp3(tf.constant(_tone(0.2)), rate=RATE).numpy(),
        "good/tone.wav": tf.audio.encode_wav(tf.constant(_tone(0.5, 2, 22050)), 22050).numpy(),
        "good/tone.flac": tfio.audio.encode_flac(
            tf.constant((_tone(0.5, 1, 22050) * 32767).astype(np.int16)), rate=22050
        ).numpy(),
        "good/tone.ogg": tfio.audio.encode_vorbis(tf.constant(_tone(0.5, 2, 22050)), rate=22050).numpy(),
        "bad/empty.mp3": b"",
        "bad/garbage.mp3": np.random.default_rng(0).bytes(3000),
        "bad/html.mp3": b"<html><body>404 Not Found</body></html>" * 20,
        "bad/truncated.mp3": mp3[: len(mp3) // 2 + 7],
        "bad/wav_named.mp3": tf.audio.encode_wav(tf.constant(_tone(0.5)), RATE).numpy(),
        "bad/truncated.wav": tf.audio.encode_wav(tf.constant(_tone(0.5)), RATE).numpy()[:5000],
        "bad/notes.txt.mp3": b"just text, named like an mp3",
    }
    files["bad/truncated.flac"] = files["good/tone.flac"][: len(files["good/tone.flac"]) // 2]
    files["bad/truncated.ogg"] = files["good/tone.ogg"][: len(files["good/tone.ogg"]) // 2]
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def _catalog(root: Path, extra_rows: str = ""):
    rows = [p.relative_to(root).as_posix() for p in folder.audio_files(root)]
    (root / "tags.csv").write_text("path,tags\n" + "".join(f'"{r}",x\n' for r in rows) + extra_rows)
    return folder.load(root, check_audio=False)


@pytest.fixture
def data_dir(audio_dir, tmp_path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(audio_dir, root)
    return root


EXPECTED_BAD = {
    "bad/empty.mp3": "empty",
    "bad/garbage.mp3": "garbage",
    "bad/html.mp3": "garbage",
    "bad/notes.txt.mp3": "garbage",
    "bad/truncated.mp3": "truncated",
    "bad/wav_named.mp3": "garbage",
    "bad/truncated.wav": "truncated",
    "bad/truncated.flac": "truncated",
    "bad/truncated.ogg": "truncated",
    "bad/gone.mp3": "missing",
}


def test_validate_finds_every_bad_file_and_measures_the_good(data_dir):
    catalog = _catalog(data_dir, extra_rows="bad/gone.mp3,x\n")
    valid, manifest = mf.validate(catalog, workers=2)
    bad = {Path(p).relative_to(data_dir).as_posix(): reason for p, reason in manifest.bad}
    assert {k: v.split(":")[0] for k, v in bad.items()} == EXPECTED_BAD
    assert "rename it to .wav" in bad["bad/wav_named.mp3"]
    assert "last MP3 frame is cut" in bad["bad/truncated.mp3"]
    assert {c.clip_id for c in valid.clips} == {c.clip_id for c in catalog.clips} - set(EXPECTED_BAD)
    assert {i for i, _ in valid.excluded} == set(EXPECTED_BAD)

    def facts(name):
        path = str(data_dir / name)
        return manifest.rate(path), manifest.channels(path), manifest.format(path)

    assert facts("good/mono16k.mp3") == (16000, 1, "mp3")
    assert facts("good/stereo44k.mp3") == (44100, 2, "mp3")
    assert facts("good/tone.wav") == (22050, 2, "wav")
    assert facts("good/tone.flac") == (22050, 1, "flac")
    assert facts("good/tone.ogg") == (22050, 2, "ogg")
    assert manifest.duration(str(data_dir / "good/tone.wav")) == pytest.approx(0.5)
    assert manifest.duration(str(data_dir / "good/mono16k.mp3")) == pytest.approx(
        1.0, abs=0.15
    )  # codec padding
    with pytest.raises(KeyError, match="not in the manifest"):
        manifest.rate(str(data_dir / "elsewhere.mp3"))


def test_report_and_cache_beside_the_data(data_dir):
    _, manifest = mf.validate(_catalog(data_dir), workers=1)
    assert manifest.cache_path == data_dir / mf.MANIFEST_NAME
    report = (data_dir / mf.REPORT_NAME).read_text().splitlines()
    assert report[0].startswith(f"# hvd_magtag: {len(EXPECTED_BAD) - 1} of ")
    assert report[1] == "path\treason"
    assert {line.split("\t")[0] for line in report[2:]} == set(EXPECTED_BAD) - {"bad/gone.mp3"}
    cached = json.loads(manifest.cache_path.read_text())
    assert cached["files"]["good/tone.ogg"]["rate"] == 22050  # keys relative to the data folder


def test_cache_is_reused_until_a_file_changes(data_dir):
    catalog = _catalog(data_dir)
    _, first = mf.validate(catalog)
    assert (first.scanned, first.reused) == (len(first), 0)
    _, second = mf.validate(catalog)
    assert (second.scanned, second.reused) == (0, len(first))
    assert second.bad == first.bad

    (data_dir / "bad/garbage.mp3").write_bytes((data_dir / "good/mono16k.mp3").read_bytes())  # repaired
    _, third = mf.validate(catalog)
    assert third.scanned == 1
    assert str(data_dir / "bad/garbage.mp3") not in dict(third.bad)


def test_min_duration(data_dir):
    valid, manifest = mf.validate(_catalog(data_dir), min_duration=0.45)
    short = str(data_dir / "good/short.mp3")
    assert re.fullmatch(r"too short: 0\.[0-3]\d s < 0\.45 s", dict(manifest.bad)[short])
    assert "good/short.mp3" not in {c.clip_id for c in valid.clips}
    assert "good/tone.wav" in {c.clip_id for c in valid.clips}
    _, again = mf.validate(_catalog(data_dir), min_duration=0.0)  # no rescan needed to change the minimum
    assert again.scanned == 0 and short not in dict(again.bad)


def test_read_only_data_uses_cache_dir(data_dir, tmp_path, monkeypatch):
    real_write = mf.fsutil.atomic_write

    def refuse_data_dir(path, text):
        if Path(path).parent == data_dir:
            raise PermissionError(13, "Permission denied", str(path))
        return real_write(path, text)

    monkeypatch.setattr(mf.fsutil, "atomic_write", refuse_data_dir)
    cache = tmp_path / "cache"
    _, manifest = mf.validate(_catalog(data_dir), cache_dir=cache)
    assert manifest.cache_path.parent == cache and manifest.report_path.parent == cache
    assert not (data_dir / mf.MANIFEST_NAME).exists()
    _, again = mf.validate(_catalog(data_dir), cache_dir=cache)
    assert again.scanned == 0


def test_mp3_cut_on_a_frame_boundary_is_caught_by_its_info_header(tmp_path):
    import tensorflow as tf
    import tensorflow_io as tfio

    mp3 = bytearray(tfio.audio.encode_mp3(tf.constant(_tone(1.0)), rate=RATE).numpy())
    frames, i = [], 0
    while i < len(mp3):
        frames.append(i)
        i += mf._mp3_frame(bytes(mp3), i)[0]
    assert i == len(mp3)
    # write a LAME-style Info header into the first (silent) frame: MPEG-2 mono -> after 4 + 9 bytes
    mp3[13:25] = b"Info" + (1).to_bytes(4, "big") + (len(frames) - 1).to_bytes(4, "big")
    whole, cut = tmp_path / "whole.mp3", tmp_path / "cut.mp3"
    whole.write_bytes(bytes(mp3))
    cut.write_bytes(bytes(mp3[: frames[len(frames) // 2]]))
    assert mf.inspect_file(whole).ok
    info = mf.inspect_file(cut)
    assert info.status == "truncated" and "Info header announces" in info.detail


def test_unsupported_suffix_and_sniffing(tmp_path):
    (tmp_path / "a.mid").write_bytes(b"MThd\0\0\0\6")
    assert mf.inspect_file(tmp_path / "a.mid").status == "unsupported"
    (tmp_path / "a.aiff").write_bytes(b"FORM....AIFF")  # a supported suffix, but no AIFF inside
    assert mf.inspect_file(tmp_path / "a.aiff").status == "garbage"
    assert mf.sniff_format(b"RIFF\x00\x00\x00\x00WAVEfmt ") == "wav"
    assert mf.sniff_format(b"ID3\x04") == "mp3" and mf.sniff_format(b"<html>") == ""


def test_scan_uses_threads_and_agrees_with_one_worker(audio_dir):
    paths = [str(p) for p in sorted(audio_dir.rglob("*.*"))]
    one = mf.scan(paths, workers=1)
    for _ in range(5):  # concurrent AudioIOTensor opens once mixed up formats (1 scan in ~15): keep checking
        assert mf.scan(paths, workers=4) == one
    assert mf.default_workers() == len(os.sched_getaffinity(0))


def _id3v2(body: bytes, version: int = 3, footer: bool = False) -> bytes:
    size = len(body)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    flags = 0x10 if footer else 0
    return (
        b"ID3"
        + bytes([version, 0, flags])
        + syncsafe
        + body
        + (b"3DI" + bytes([version, 0, flags]) + syncsafe if footer else b"")
    )


def test_mp3_layout_skips_every_kind_of_tag(tmp_path):
    """Real LAME frames wrapped in every tag a library meets: two leading ID3v2 tags (one with a footer), and
    trailing APEv2 (with header), Lyrics3 v2, an appended ID3v2.4 with footer, ID3v1 with its TAG+ block."""
    import audio_fixtures as afx

    frames = afx.path("mp3/lame_cbr64_16k_mono.mp3").read_bytes()
    plain = mf.mp3_layout(frames)
    lead = _id3v2(b"TIT2" + (20).to_bytes(4, "big") + b"\0\0\3" + b"x" * 19, version=4, footer=True)
    lead += _id3v2(b"\0" * 300)  # a second tag, all padding
    items = b"\x05\0\0\0\0\0\0\0Title\0fixtu"
    ape_size = len(items) + 32
    ape_head = b"APETAGEX" + (2000).to_bytes(4, "little") + ape_size.to_bytes(4, "little")
    ape = ape_head + (1).to_bytes(4, "little") + (0xA0000000).to_bytes(4, "little") + b"\0" * 8
    ape += items + ape_head + (1).to_bytes(4, "little") + (0x80000000).to_bytes(4, "little") + b"\0" * 8
    lyrics = b"LYRICSBEGININD0000211" + b"LYR00005hello"
    lyrics += str(len(lyrics)).zfill(6).encode() + b"LYRICS200"
    appended = _id3v2(b"TALB" + (5).to_bytes(4, "big") + b"\0\0\3abcd", version=4, footer=True)
    id3v1 = b"TAG+" + b"\0" * 223 + b"TAG" + b"\0" * 125
    data = lead + frames + ape + lyrics + appended + id3v1
    layout = mf.mp3_layout(data)
    assert layout.problem is None
    assert layout.tags_end == len(lead) == layout.first
    assert layout.trailing_start == len(lead) + len(frames)
    assert layout.header == plain.header == "Info" and len(layout.frames) == len(plain.frames)
    assert [f - len(lead) for f in layout.frames] == list(plain.frames)
    # tensorflow-io's decoder (minimp3) strips ID3v1 and an APE tag before it; other trailing bytes make it
    # drop the last frame, so it decodes less than the Info frame announces (a file the manifest rejects)
    data = lead + frames + ape + id3v1
    (tmp_path / "tagged.mp3").write_bytes(data)
    info = mf.inspect_file(tmp_path / "tagged.mp3")
    assert info.ok, info.reason
    assert (info.audio_start - len(lead), info.audio_end - len(lead)) == plain.audio_range(
        info.samples, MP3_WARMUP_SAMPLES
    )


def test_mp3_whose_sample_rate_changes_mid_file_is_garbage(tmp_path):
    import audio_fixtures as afx

    glued = tmp_path / "glued.mp3"
    first = afx.path("mp3/lame_cbr32_16k_mono.mp3").read_bytes()
    glued.write_bytes(first + afx.path("mp3/ffmpeg_cbr128_44k_stereo_plain.mp3").read_bytes())
    info = mf.inspect_file(glued)
    assert info.status == "garbage"
    assert info.detail == (
        f"sample rate changes from 16000 Hz to 44100 Hz at byte {len(first)}: a concatenation of different streams"
    )


def test_scanner_version_change_rescans_the_cache(data_dir, monkeypatch):
    _, first = mf.validate(_catalog(data_dir))
    monkeypatch.setattr(mf, "SCANNER_VERSION", mf.SCANNER_VERSION + 1)
    _, again = mf.validate(_catalog(data_dir))
    assert again.scanned == len(first) and again.reused == 0
