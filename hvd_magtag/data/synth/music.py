"""Music for the synthetic dataset: scales, chords, melodies and rhythms, as note lists.

A clip's :class:`Score` (key, mode, tempo, a chord per bar) is drawn from its plan by :func:`make_score`;
:func:`parts_for` gives the notes one instrument plays over it (piano chords and melody, guitar arpeggios or
strums, power chords, walking bass ...), denser figures at faster tempi (:func:`tempo_values`). Notes are
``(onset s, duration s, MIDI pitch, velocity 0-1)``; :mod:`hvd_magtag.data.synth.instruments` plays them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hvd_magtag.data.synth.scene import FAST_BPM, SLOW_BPM, ClipPlan

_MODES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "raga": (0, 1, 4, 5, 7, 8, 11),  # Bhairav-like
    "pentatonic": (0, 2, 4, 7, 9),
    "chromatic": tuple(range(12)),
}
# (onset s, duration s, MIDI pitch, velocity 0-1)
Notes = list[tuple[float, float, float, float]]


def _scale(key: int, mode: str, lo: int, hi: int) -> np.ndarray:
    """MIDI pitches of the scale between lo and hi (inclusive)."""
    steps = _MODES[mode]
    return np.array([p for p in range(lo, hi + 1) if (p - key) % 12 in steps])


@dataclass
class Score:
    """Musical context shared by all parts of one clip."""

    genre: str
    key: int
    mode: str
    bpm: float
    seconds: float
    rng: np.random.Generator
    chords: list[tuple[float, tuple[int, ...]]]  # (bar onset s, chord pitch classes as offsets from key)

    @property
    def beat(self) -> float:
        return 60.0 / self.bpm

    def chord_at(self, t: float) -> tuple[int, ...]:
        cur = self.chords[0][1]
        for t0, c in self.chords:
            if t0 > t:
                break
            cur = c
        return cur


def make_score(plan: ClipPlan, seconds: float, rng: np.random.Generator) -> Score:
    steps = _MODES[plan.mode]
    degrees = [0, 4, 5, 3] if len(steps) == 7 else [0, 2, 3, 0]
    prog = [[0, 4, 5, 3], [0, 3, 4, 0], [0, 5, 3, 4], degrees][int(rng.integers(0, 4))]
    bar = 4 * 60.0 / plan.bpm
    chords = []
    for b in range(int(np.ceil(seconds / bar)) + 1):
        d = prog[b % len(prog)] % len(steps)
        chord = tuple(steps[(d + k) % len(steps)] + 12 * ((d + k) // len(steps)) for k in (0, 2, 4))
        chords.append((b * bar, chord))
    return Score(plan.genre, plan.key, plan.mode, plan.bpm, seconds, rng, chords)


def melody(
    s: Score, lo: int, hi: int, values: tuple[float, ...], rest_p: float = 0.1, vel=(0.6, 1.0)
) -> Notes:
    """A random walk on the scale; note lengths drawn from ``values`` (in beats)."""
    pitches = _scale(s.key, s.mode, lo, hi)
    i = len(pitches) // 2
    t, out = float(s.rng.uniform(0, 0.5)) * s.beat, []
    while t < s.seconds:
        d = float(s.rng.choice(values)) * s.beat
        i = int(np.clip(i + s.rng.integers(-2, 3), 0, len(pitches) - 1))
        if s.rng.random() >= rest_p:
            out.append((t, d, float(pitches[i]), float(s.rng.uniform(*vel))))
        t += d
    return out


def _chord_part(s: Score, octave: int, per_bar: str, vel=(0.5, 0.8)) -> Notes:
    """Chord tones per bar: 'block' (sustained), 'arp4'/'arp8'/'arp16' (arpeggios), 'strum' (per beat),
    'power' (root an octave down, palm-muted)."""
    out: Notes = []
    bar = 4 * s.beat
    base = s.key % 12 + 12 * octave
    for t0, chord in s.chords:
        if t0 >= s.seconds:
            break
        tones = [base + c for c in chord]
        if per_bar == "block":
            for p in tones:
                out.append((t0, bar, float(p), float(s.rng.uniform(*vel))))
        elif per_bar == "strum":  # on the beats, 8ths when fast
            for b in np.arange(0, 4, 0.5 if s.bpm >= FAST_BPM else 1.0):
                for k, p in enumerate(tones + [tones[0] + 12]):
                    out.append((t0 + b * s.beat + 0.012 * k, s.beat, float(p), float(s.rng.uniform(*vel))))
        elif per_bar == "power":
            for e in range(8):
                out.append(
                    (t0 + e * s.beat / 2, s.beat / 2, float(tones[0] - 12), float(s.rng.uniform(*vel)))
                )
        else:
            div = {"arp4": 1, "arp8": 2, "arp16": 4}[per_bar]
            seq = tones + [tones[0] + 12, tones[2] - 12 + 12, tones[1]]
            for e in range(4 * div):
                p = seq[e % len(seq)]
                out.append((t0 + e * s.beat / div, 1.5 * s.beat / div, float(p), float(s.rng.uniform(*vel))))
    return out


def _bass_part(s: Score, style: str) -> Notes:
    out: Notes = []
    base = s.key % 12 + 36
    for t0, chord in s.chords:
        if t0 >= s.seconds:
            break
        root = base + chord[0]
        if style == "walking":
            pitches = _scale(s.key, s.mode, root - 5, root + 9)
            for b in range(4):
                p = root if b == 0 else int(s.rng.choice(pitches))
                out.append((t0 + b * s.beat, s.beat * 0.9, float(p), 0.8))
        elif style == "eighths":
            for e in range(8):
                out.append((t0 + e * s.beat / 2, s.beat / 2 * 0.8, float(root + 12 * (e % 4 == 3)), 0.8))
        else:  # roots on beats 1 and 3
            out.append((t0, 2 * s.beat * 0.9, float(root), 0.85))
            out.append((t0 + 2 * s.beat, 2 * s.beat * 0.9, float(root + 7), 0.75))
    return out


def tempo_values(bpm: float, fast, mid, slow):
    """The option for the tempo class of ``bpm`` (fast / medium / slow): denser figures when faster."""
    return fast if bpm >= FAST_BPM else slow if bpm <= SLOW_BPM else mid


def parts_for(inst: str, s: Score, lead: bool) -> Notes:
    """The notes ``inst`` plays; ``lead`` marks the ensemble's melody instrument."""
    bpm = s.bpm
    if inst == "piano":
        part = _chord_part(s, 4, "block" if bpm <= SLOW_BPM else "arp8", vel=(0.35, 0.6))
        if lead:
            part += melody(s, 64, 88, tempo_values(bpm, (0.5, 0.25), (1, 0.5), (2, 1)))
        return part
    if inst in ("guitar_nylon", "guitar_steel"):
        if inst == "guitar_steel" and not lead:
            return _chord_part(s, 3, "strum", vel=(0.4, 0.7))
        part = _chord_part(s, 3, "arp16" if bpm >= FAST_BPM else "arp8")
        if lead and bpm <= SLOW_BPM:
            part += melody(s, 60, 79, (1, 2), vel=(0.6, 0.9))
        return part
    if inst == "guitar_dist":
        return _chord_part(s, 3, "power", vel=(0.8, 1.0))
    if inst == "harpsichord":
        values = tempo_values(bpm, (0.25, 0.25, 0.5), (0.5, 0.5, 1), (1, 2))
        return melody(s, 60, 86, values, rest_p=0.02) + _bass_part(s, "walking")
    if inst == "banjo":  # three-finger rolls
        return _chord_part(s, 4, "arp16", vel=(0.5, 0.9))
    if inst == "nature":
        return []
    if inst == "harp":
        arp = tempo_values(bpm, "arp16", "arp8", "arp4")
        return _chord_part(s, 4, arp, vel=(0.4, 0.8)) + _chord_part(s, 5, "arp4", vel=(0.4, 0.7))
    if inst == "sitar":
        return melody(s, 55, 79, tempo_values(bpm, (0.25, 0.5), (0.5, 1), (1, 2)), rest_p=0.05)
    if inst == "violin":
        if lead:
            return melody(s, 67, 91, tempo_values(bpm, (0.5, 0.25), (1, 0.5), (2, 1, 3)), rest_p=0.05)
        return _chord_part(s, 5, "block")
    if inst == "cello":
        if lead:
            return melody(s, 36, 60, tempo_values(bpm, (0.5, 1), (1, 2), (2, 3)), rest_p=0.05)
        return _bass_part(s, "roots")
    if inst == "strings":
        return _chord_part(s, 4, "block", vel=(0.5, 0.7)) + (melody(s, 67, 88, (2, 1, 4)) if lead else [])
    if inst == "flute":
        return melody(s, 72, 93, tempo_values(bpm, (0.5, 0.25), (1, 0.5), (2, 1)), rest_p=0.1)
    if inst == "synth_lead":
        return melody(s, 60, 84, tempo_values(bpm, (0.25, 0.5), (0.5, 1), (1, 2)), rest_p=0.15)
    if inst == "synth_pad":
        return _chord_part(s, 4, "block", vel=(0.5, 0.7))
    if inst == "synth_bass":
        return _bass_part(s, "eighths")
    if inst == "bass":
        return _bass_part(s, "walking" if s.genre == "other" else "roots")
    if inst == "organ":
        return _chord_part(s, 4, "block") + (melody(s, 67, 84, (1, 0.5)) if lead else [])
    if inst in ("sax", "brass", "clarinet"):
        lo = {"sax": 55, "brass": 58, "clarinet": 55}[inst]
        return melody(s, lo, lo + 22, (0.5, 1, 0.5, 1.5), rest_p=0.12)
    if inst == "bells":
        return melody(s, 72, 96, (1, 2), rest_p=0.2)
    if inst == "noisefx":
        return melody(s, 48, 90, (0.25, 0.5, 1, 2), rest_p=0.2)
    raise ValueError(f"unknown instrument {inst!r}")
