"""The scene and label model of the synthetic dataset: what each clip plays and what annotators say about it.

**Generative scene model.** Artists each play one genre of :data:`GENRES` (genres are dealt so that even a
few hundred clips hold every genre in proportion); each source *track* samples a scene: an ensemble of
instruments (the first leads), a drum kit, a singer, a tempo class (:data:`TEMPO_BPM`: slow 52-72, medium
84-124, fast 136-172 BPM, with gaps so that tempo tags are unambiguous), a loudness level
(:data:`LEVEL_DBFS`), key/mode and reverb. A track yields 1-4 clips (29-s segments, all in one folder like
MTAT); each clip varies it (a singer may rest, an accompanying part may drop out, the drums may be
*featured*: mixed :data:`DRUMS_FEATURED_DB` louder, with fills). The plan (:class:`ClipPlan`) is the score:
the renderer plays exactly what it lists, and the labels are derived from it (``_derive_tags``):
instrument tags from the instruments (:data:`TAG_RULES`), ``drums`` / ``beat`` / ``beats`` from featured kits
(:data:`KIT_TAGS`), ``fast`` / ``slow`` from the tempo class, ``loud`` / ``quiet`` / ``soft`` from the level,
vocal tags from the singer (pitch range and formants differ by gender; opera = strong vibrato and a singer's
formant; choir = eight detuned voices in chords), genre tags from the genre. After rendering, a source whose
stem is more than :data:`INAUDIBLE_DB` below the mix loses its tags (:func:`drop_inaudible_tags`).

**Annotation noise, like MTAT's crowd labels.** Each tag fires with its own probability when its cause is
present (e.g. ``guitar`` 0.85), synonyms are drawn separately so "female" / "woman" / "female vocal" /
"female voice" (and the male, vocal, choir/choral, classical/classic, beat/beats and no-vocals families)
co-occur but rarely all together; "vocals" / "female vocal" are said over a band (drums present), "voice" /
"singing" / "female voice" over sparse accompaniment; "no vocals" only where a singer is expected (rock, metal,
pop, country). On top, every given top-50 tag is dropped with probability :data:`LABEL_DROP` and a clip
receives one spurious top-50 tag (drawn by real frequency) with probability :data:`LABEL_ADD`. The "other"
scenes (jazz combo, organ, brass, clarinet, bells; ~20 % of clips) get only tags outside the top 50, as ~18 %
of real MTAT clips have no top-50 tag; non-top-50 synonyms among the 188 are set occasionally. With these
rates, the top-50 shares follow the shipped ``top50_tag_frequency.tsv``
(:func:`~hvd_magtag.data.mtat.load_top50_frequency`; Spearman ≈ 0.94) and an oracle
that knows the scene reaches a macro ROC-AUC of ≈ 0.97 (the label-noise ceiling).

**Broken files like the real ones.** A fraction :data:`BROKEN_RATE` of clips (at least one when N ≥ 200)
is marked broken (written as a 0-byte mp3 and still listed in the CSV); ``broken_rate=0`` disables them.

**Determinism.** The plan depends only on ``(n_clips, seed, broken_rate)``: tracks are drawn from
``(seed, track)`` and clips from ``(seed, clip index)`` seed sequences.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from hvd_magtag.data.mtat import DIRECTORY_SPLIT, load_top50_frequency, load_top50_tags

FOLDERS = tuple(DIRECTORY_SPLIT)  # MTAT's 16 audio folders 0-9, a-f (0-b train, c valid, d-f test)
SEGMENT_SECONDS = 29  # MTAT segments of a track: <start>-<start+29> with start = 29 * m + 1 (s)
BROKEN_RATE = 0.001  # share of clips written as 0-byte mp3s (MTAT ships 3 of 25,863)
LABEL_DROP = 0.02  # every given top-50 tag is dropped with this probability (annotator misses)
LABEL_ADD = 0.02  # a clip gets one spurious top-50 tag (drawn by real frequency) with this probability
INAUDIBLE_DB = -30.0  # a source whose stem RMS is this far below the mix loses its tags (dB)
LEVEL_DBFS = {"loud": -11.0, "normal": -18.0, "quiet": -30.0}  # mix RMS targets (dB re full scale)


@dataclass(frozen=True)
class Genre:
    """One kind of source track; all weights are relative, all ``*_p`` are probabilities."""

    weight: float  # share of clips
    tempo: tuple[float, float, float]  # P(slow), P(medium), P(fast): BPM ranges in TEMPO_BPM
    ensembles: tuple[tuple[tuple[str, ...], float], ...]  # instrument sets (first = lead) and weights
    drums: tuple[tuple[str, float], ...] = (("", 1.0),)  # drum kit ("" = none) and weights
    voices: tuple[tuple[str, float], ...] = ()  # singer kinds when the track has one
    vocal_p: float = 0.0  # probability that a track has a singer
    levels: tuple[float, float, float] = (0.0, 1.0, 0.0)  # P(loud), P(normal), P(quiet)
    tags: tuple[tuple[str, float], ...] = ()  # genre tags and their probabilities
    reverb: float = 0.2  # reverb send (0-1)
    no_vocal_p: float = 0.0  # P("no vocals") when the singer is missing (only where one is expected)


# Tempo classes (BPM ranges) with gaps between them, so that "slow" and "fast" are unambiguous.
TEMPO_BPM = {"slow": (52.0, 72.0), "medium": (84.0, 124.0), "fast": (136.0, 172.0)}
FAST_BPM, SLOW_BPM = TEMPO_BPM["fast"][0], TEMPO_BPM["slow"][1]  # "fast" / "slow" only beyond these

# fmt: off
GENRES: dict[str, Genre] = {
    "classical": Genre(0.15, (0.2, 0.7, 0.1), (
        (("piano",), 0.18), (("strings",), 0.10), (("violin", "piano"), 0.08), (("violin", "cello"), 0.03),
        (("cello", "piano"), 0.01), (("harpsichord",), 0.08), (("harpsichord", "strings"), 0.07),
        (("guitar_nylon",), 0.12), (("harp",), 0.05), (("harp", "flute"), 0.04), (("flute", "strings"), 0.05),
        (("flute", "piano"), 0.04), (("strings", "piano"), 0.04)),
        levels=(0.0, 0.75, 0.25), tags=(("classical", 0.75), ("clasical", 0.02), ("not rock", 0.01)), reverb=0.35),
    "opera": Genre(0.085, (0.25, 0.75, 0.0), (
        (("strings",), 0.4), (("piano",), 0.3), (("strings", "harpsichord"), 0.1), (("strings", "flute"), 0.1),
        (("violin", "strings"), 0.1)),
        voices=(("opera_female", 0.65), ("opera_male", 0.35)), vocal_p=1.0, levels=(0.05, 0.85, 0.1),
        tags=(("classical", 0.3),), reverb=0.45),
    "choir": Genre(0.05, (0.6, 0.4, 0.0), ((("",), 0.5), (("strings",), 0.25), (("organ",), 0.25)),
        voices=(("choir", 1.0),), vocal_p=1.0, levels=(0.0, 0.7, 0.3), tags=(("classical", 0.15),), reverb=0.7),
    "techno": Genre(0.11, (0.0, 0.6, 0.4), (
        (("synth_bass",), 0.35), (("synth_bass", "synth_lead"), 0.4), (("synth_bass", "synth_pad"), 0.25)),
        drums=(("machine", 1.0),), voices=(("female", 0.5), ("male", 0.5)), vocal_p=0.08, levels=(0.1, 0.9, 0.0),
        tags=(("techno", 0.9), ("electronic", 0.45), ("trance", 0.08), ("house", 0.08),
              ("electro", 0.05), ("electronica", 0.05), ("repetitive", 0.05)), reverb=0.1),
    "electronic": Genre(0.045, (0.0, 0.95, 0.05), (
        (("synth_pad", "synth_bass"), 0.4), (("synth_lead", "synth_pad"), 0.3), (("piano", "synth_bass"), 0.3)),
        drums=(("break", 0.7), ("machine", 0.3)), voices=(("female", 1.0),), vocal_p=0.1, levels=(0.1, 0.8, 0.1),
        tags=(("electronic", 0.9), ("techno", 0.15), ("electronica", 0.1), ("spacey", 0.05)), reverb=0.2),
    "ambient": Genre(0.06, (1.0, 0.0, 0.0), (
        (("synth_pad",), 0.35), (("synth_pad", "piano"), 0.25), (("synth_pad", "flute"), 0.15),
        (("synth_pad", "bells"), 0.1), (("synth_pad", "harp"), 0.15)),
        drums=(("", 0.8), ("ambient", 0.2)), voices=(("female", 1.0),), vocal_p=0.05, levels=(0.0, 0.6, 0.4),
        tags=(("ambient", 0.9), ("spacey", 0.1), ("airy", 0.05), ("calm", 0.05), ("drone", 0.05)), reverb=0.7),
    "new age": Genre(0.03, (0.9, 0.1, 0.0), (
        (("flute", "synth_pad", "nature"), 0.3), (("harp", "synth_pad", "nature"), 0.2),
        (("piano", "synth_pad", "nature"), 0.2), (("guitar_nylon", "synth_pad", "nature"), 0.15),
        (("strings", "synth_pad", "nature"), 0.15)),
        drums=(("", 0.7), ("ambient", 0.3)), levels=(0.0, 0.6, 0.4), tags=(("new age", 0.8), ("ambient", 0.55)),
        reverb=0.6),
    "rock": Genre(0.08, (0.0, 0.8, 0.2), (
        (("guitar_dist", "bass"), 0.6), (("guitar_dist", "bass", "piano"), 0.1),
        (("guitar_dist", "guitar_steel", "bass"), 0.3)),
        drums=(("rock", 1.0),), voices=(("male", 0.8), ("female", 0.2)), vocal_p=0.45, levels=(0.4, 0.6, 0.0),
        tags=(("rock", 0.9), ("hard rock", 0.05)), reverb=0.1, no_vocal_p=1.0),
    "metal": Genre(0.05, (0.0, 0.3, 0.7), ((("guitar_dist", "bass"), 1.0),),
        drums=(("metal", 1.0),), voices=(("male", 1.0),), vocal_p=0.3, levels=(0.6, 0.4, 0.0),
        tags=(("metal", 0.85), ("rock", 0.9), ("heavy metal", 0.2), ("heavy", 0.1)), reverb=0.1, no_vocal_p=1.0),
    "pop": Genre(0.04, (0.05, 0.9, 0.05), (
        (("guitar_steel", "bass", "synth_pad"), 0.3), (("piano", "bass"), 0.3),
        (("guitar_steel", "piano", "bass"), 0.2), (("synth_lead", "bass"), 0.2)),
        drums=(("pop", 1.0),), voices=(("female", 0.55), ("male", 0.45)), vocal_p=0.9, levels=(0.1, 0.9, 0.0),
        tags=(("pop", 0.85), ("rock", 0.1), ("happy", 0.05), ("upbeat", 0.05)), reverb=0.2, no_vocal_p=1.0),
    "country": Genre(0.02, (0.0, 0.8, 0.2), (
        (("guitar_steel", "banjo", "bass"), 0.5), (("guitar_steel", "violin", "bass"), 0.3),
        (("guitar_steel", "banjo", "violin", "bass"), 0.2)),
        drums=(("country", 0.8), ("", 0.2)), voices=(("male", 0.75), ("female", 0.25)), vocal_p=0.85,
        tags=(("country", 0.85), ("folk", 0.1)), reverb=0.15, no_vocal_p=1.0),
    "acoustic": Genre(0.06, (0.2, 0.8, 0.0), (
        (("guitar_steel",), 0.45), (("guitar_nylon",), 0.25), (("guitar_steel", "guitar_nylon"), 0.1),
        (("guitar_steel", "flute"), 0.1), (("guitar_steel", "violin"), 0.1)),
        voices=(("male", 0.5), ("female", 0.5)), vocal_p=0.45, levels=(0.0, 0.75, 0.25),
        tags=(("folk", 0.1), ("acoustic", 0.1)), reverb=0.25),
    "indian": Genre(0.04, (0.2, 0.65, 0.15), (
        (("sitar",), 0.6), (("sitar", "flute"), 0.2), (("sitar", "violin"), 0.1), (("sitar", "guitar_steel"), 0.1)),
        drums=(("tabla", 0.6), ("", 0.4)), voices=(("female", 0.6), ("male", 0.4)), vocal_p=0.15,
        levels=(0.0, 0.85, 0.15),
        tags=(("indian", 0.85), ("india", 0.1), ("eastern", 0.1), ("oriental", 0.05), ("middle eastern", 0.03)),
        reverb=0.3),
    "weird": Genre(0.035, (0.2, 0.6, 0.2), ((("noisefx",), 0.5), (("noisefx", "synth_pad"), 0.5)),
        drums=(("break", 0.3), ("", 0.7)), levels=(0.2, 0.7, 0.1),
        tags=(("weird", 0.85), ("strange", 0.2), ("eerie", 0.15), ("noise", 0.1), ("dark", 0.1),
              ("different", 0.05)), reverb=0.4),
    # scenes MTAT annotators described only with tags outside the top 50 (~18 % of real clips have none)
    "other": Genre(0.22, (0.02, 0.95, 0.03), (
        (("sax", "bass", "organ"), 0.25), (("organ",), 0.2), (("brass", "bass"), 0.15), (("clarinet", "bass"), 0.15),
        (("bells",), 0.1), (("sax", "bass"), 0.15)),
        levels=(0.0, 0.98, 0.02), tags=(("jazz", 0.15), ("jazzy", 0.05), ("blues", 0.03)), reverb=0.3),
}
# fmt: on
VOICE_GENRE_TAGS = {
    "opera": (("opera", 0.85), ("operatic", 0.05)),
    "choir": (("chorus", 0.1), ("chant", 0.08)),
}

# What each sound source makes annotators say: (tag, probability). Synonyms are drawn independently.
TAG_RULES: dict[str, tuple[tuple[str, float], ...]] = {
    "piano": (("piano", 0.85), ("keyboard", 0.03)),
    "guitar_nylon": (("guitar", 0.85), ("classical guitar", 0.15), ("acoustic guitar", 0.05)),
    "guitar_steel": (("guitar", 0.85), ("acoustic guitar", 0.12), ("acoustic", 0.08), ("guitars", 0.03)),
    "guitar_dist": (("guitar", 0.8), ("electric guitar", 0.12), ("electric", 0.06), ("guitars", 0.03)),
    "harpsichord": (("harpsichord", 0.9), ("harpsicord", 0.08), ("baroque", 0.2)),
    "harp": (("harp", 0.85),),
    "banjo": (("banjo", 0.4),),
    "nature": (("birds", 0.3), ("water", 0.2)),
    "sitar": (("sitar", 0.7),),
    "violin": (("violin", 0.8), ("strings", 0.4), ("violins", 0.04), ("fiddle", 0.04)),
    "cello": (("cello", 0.6), ("strings", 0.4)),
    "strings": (("strings", 0.75), ("violin", 0.15), ("orchestral", 0.06), ("orchestra", 0.04)),
    "flute": (("flute", 0.7), ("flutes", 0.04), ("woodwind", 0.04), ("wind", 0.03)),
    "synth_lead": (("synth", 0.75), ("synthesizer", 0.06)),
    "synth_pad": (("synth", 0.35), ("synthesizer", 0.05)),
    "synth_bass": (("synth", 0.05),),
    "bass": (("bass", 0.12),),
    "organ": (("organ", 0.5),),
    "sax": (("sax", 0.5),),
    "brass": (("trumpet", 0.4), ("horns", 0.25), ("horn", 0.15)),
    "clarinet": (("clarinet", 0.4), ("woodwind", 0.3), ("oboe", 0.05)),
    "bells": (("bells", 0.4), ("chimes", 0.3)),
    "noisefx": (("noise", 0.1),),
}
# Instruments accompanying a lead are named less: these rules replace TAG_RULES for non-first instruments.
ACCOMPANIMENT_RULES: dict[str, tuple[tuple[str, float], ...]] = {"synth_pad": (("synth", 0.04),)}
# Drum kits: (tags when the drums are featured, tags otherwise). Featured drums are mixed DRUMS_FEATURED_DB
# louder and play fills; annotators mostly name drums that stand out.
DRUMS_FEATURED_P, DRUMS_FEATURED_DB = 0.4, 8.0
ACOUSTIC_KIT = ((("drums", 0.85), ("drum", 0.05), ("percussion", 0.03)), (("drums", 0.04),))
KIT_TAGS: dict[str, tuple[tuple[tuple[str, float], ...], tuple[tuple[str, float], ...]]] = {
    "rock": ACOUSTIC_KIT,
    "metal": ((("drums", 0.85), ("fast beat", 0.05)), (("drums", 0.04),)),
    "pop": ACOUSTIC_KIT,
    "country": ACOUSTIC_KIT,
    "ambient": ACOUSTIC_KIT,
    "tabla": ((("drums", 0.7), ("percussion", 0.2), ("tribal", 0.03)), (("drums", 0.04),)),
    "machine": ((("beat", 0.8), ("drums", 0.25), ("fast beat", 0.03)), (("beat", 0.04), ("drums", 0.02))),
    "break": ((("beat", 0.8), ("drums", 0.3)), (("beat", 0.04), ("drums", 0.02))),
}
# "beats" is the annotators' plural of "beat": drawn when "beat" was given, rarely alone.
BEATS_P = {"break": 0.95, "machine": 0.15}  # "beats": mostly featured breakbeats; given with "beat"
# Singer tags; the "band" variants apply when drums play, the "bare" ones otherwise (annotators say
# "vocals" over a band and "voice" / "singing" over sparse accompaniment).
# fmt: off
VOICE_TAGS: dict[str, tuple[tuple[str, float], ...]] = {
    "female": (("female", 0.85), ("woman", 0.6), ("female singer", 0.05), ("woman singing", 0.04),
               ("female vocals", 0.04), ("girl", 0.02)),
    "female band": (("female vocal", 0.7),),
    "female bare": (("female voice", 0.85),),
    "male": (("male", 0.75), ("man", 0.35), ("male singer", 0.05), ("man singing", 0.04), ("male vocals", 0.04)),
    "male band": (("male vocal", 0.6),),
    "male bare": (("male voice", 0.85),),
    "any band": (("vocal", 0.6), ("vocals", 0.55), ("voices", 0.02)),
    "any bare": (("vocal", 0.6), ("singing", 0.9), ("voice", 0.7), ("voices", 0.02)),
    "opera_female": (("female", 0.6), ("woman", 0.35), ("female voice", 0.15), ("soprano", 0.15),
                     ("female opera", 0.1)),
    "opera_male": (("male", 0.5), ("man", 0.2), ("male voice", 0.2), ("male opera", 0.1)),
    "opera": (("vocal", 0.15), ("singing", 0.3)),
    "choir": (("choir", 0.85), ("vocal", 0.15), ("singing", 0.2), ("voices", 0.05),
              ("chanting", 0.04)),
}
# fmt: on
CHORAL_GIVEN_CHOIR, CHORAL_ALONE = 0.6, 0.1  # "choral" is mostly said together with "choir"
NO_VOCAL_TAGS = (("no vocals", 0.5), ("no vocal", 0.4), ("no voice", 0.25), ("instrumental", 0.1))
NO_VOCAL_EXTRA = (("no singing", 0.04), ("no singer", 0.03), ("no voices", 0.03))
TEMPO_TAGS = {
    "fast": (("fast", 0.7), ("quick", 0.03), ("upbeat", 0.03)),
    "slow": (("slow", 0.75), ("mellow", 0.03)),
}
LEVEL_TAGS = {
    "loud": (("loud", 0.6), ("heavy", 0.03), ("hard", 0.03)),
    "quiet": (("quiet", 0.45), ("calm", 0.04)),
}
SOFT_P = {"slow": 0.8, "other": 0.15}  # "soft": quiet clips, mostly the slow ones
DANCE_P = {"featured": 0.6, "other": 0.03}  # "dance": techno, mostly with a featured four-on-the-floor
SOLO_P = 0.45  # "solo": a classical piece with one instrument, no singer
CLASSIC_P = 0.3  # "classic": a classical piece with bowed strings or harpsichord
CLASSIC_SOURCES = ("strings", "violin", "cello", "harpsichord")
VOICE_REST_P = 0.15  # a singer rests in this share of a track's clips (not in opera / choir)
PART_REST_P = 0.15  # an accompanying instrument rests in this share of clips


# --------------------------------------------------------------------------------------------------------------
# Plans
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClipPlan:
    """Everything the renderer plays for one clip, and the tags derived from it."""

    index: int  # position in the CSV (0-based)
    clip_id: int
    mp3_path: str  # relative to the dataset root
    track: int
    genre: str
    instruments: tuple[str, ...]
    drums: str  # drum kit ("" = none)
    drums_featured: bool  # drums mixed DRUMS_FEATURED_DB louder, with fills
    voice: str  # "" | female | male | opera_female | opera_male | choir
    bpm: float  # beats per minute
    level: str  # loud | normal | quiet
    level_db: float  # mix RMS target (dB re full scale)
    key: int  # tonic (MIDI note)
    mode: str  # major | minor | raga | pentatonic | chromatic
    reverb: float  # reverb send 0-1
    broken: bool  # written as a 0-byte file
    tag_sources: tuple[tuple[str, str], ...] = field(default=())  # (tag, source) where source is an
    # instrument, the drum kit, "voice" or "scene"


@dataclass(frozen=True)
class _Track:
    index: int
    artist: str
    album: str
    number: int
    title: str
    genre: str
    instruments: tuple[str, ...]
    drums: str
    voice: str
    bpm: float
    level: str
    key: int
    mode: str
    segments: tuple[int, ...]  # segment indices m (start = 29 m + 1 s)
    first_id: int  # clip_id of segment 0


def _choice(rng: np.random.Generator, options) -> object:
    """Pick one of ``((value, weight), ...)``."""
    options = list(options)
    values = [v for v, _ in options]
    weights = np.array([w for _, w in options], float)
    return values[int(rng.choice(len(values), p=weights / weights.sum()))]


_SYLLABLES = (
    "ka ra mi no sa lo ve ti an el or us ba de fi go ha ju ko li ma ne po qu ri se ta vi wo xa yo ze "
    "bri cla dro fen gar hol ister mond nar pel quin ros sten tor val wen"
).split()


def _name(rng: np.random.Generator, words: int) -> str:
    """A made-up lower-case name in MTAT path style (words joined by '_', never '-')."""
    return "_".join(
        "".join(_SYLLABLES[i] for i in rng.integers(0, len(_SYLLABLES), rng.integers(2, 4)))
        for _ in range(words)
    )


def _sample_track(seed: int, index: int, artist: str, album: str, number: int, genre: str, first_id: int):
    """One source track of ``genre``: (track, its length in 29-s segments). Depends only on (seed, index)."""
    rng = np.random.default_rng([seed, 1, index])
    g = GENRES[genre]
    instruments = tuple(i for i in _choice(rng, g.ensembles) if i)
    drums = _choice(rng, g.drums)
    voice = _choice(rng, g.voices) if g.voices and rng.random() < g.vocal_p else ""
    tempo = str(_choice(rng, zip(TEMPO_BPM, g.tempo)))
    bpm = float(rng.uniform(*TEMPO_BPM[tempo]))
    level = str(_choice(rng, zip(LEVEL_DBFS, g.levels)))
    mode = {"indian": "raga", "weird": "chromatic", "ambient": "pentatonic", "new age": "pentatonic"}.get(
        genre, "minor" if rng.random() < 0.4 else "major"
    )
    n_segments = int(rng.integers(1, 5))
    length = int(rng.integers(max(n_segments * 2, 6), 14))
    segments = tuple(sorted(rng.choice(np.arange(length), n_segments, replace=False).tolist()))
    title = _name(rng, int(rng.integers(1, 4)))
    key = int(rng.integers(50, 62))
    track = _Track(
        index,
        artist,
        album,
        number,
        title,
        genre,
        instruments,
        drums,
        voice,
        bpm,
        level,
        key,
        mode,
        segments,
        first_id,
    )
    return track, length


def _draw(rng: np.random.Generator, rules, source: str, out: list[tuple[str, str]]) -> None:
    for tag, p in rules:
        if rng.random() < p:
            out.append((tag, source))


def _derive_tags(plan: ClipPlan, rng: np.random.Generator, top50: list[str], top50_p: np.ndarray):
    """The annotators' tags for what ``plan`` plays: ((tag, source), ...) without duplicate tags.

    source is the instrument, the drum kit, "voice", "scene" (genre, tempo, level) or "noise" (LABEL_ADD).
    """
    g = GENRES[plan.genre]
    out: list[tuple[str, str]] = []
    _draw(rng, g.tags, "scene", out)
    if plan.genre in VOICE_GENRE_TAGS and plan.voice:
        _draw(rng, VOICE_GENRE_TAGS[plan.genre], "voice", out)
    for i, inst in enumerate(plan.instruments):
        _draw(rng, TAG_RULES[inst] if i == 0 else ACCOMPANIMENT_RULES.get(inst, TAG_RULES[inst]), inst, out)
    if plan.drums:
        featured, plain = KIT_TAGS[plan.drums]
        _draw(rng, featured if plan.drums_featured else plain, plan.drums, out)
        beat = any(t == "beat" for t, _ in out)
        if beat and rng.random() < BEATS_P.get(plan.drums, 0.0):
            out.append(("beats", plan.drums))
    if plan.genre == "techno" and plan.drums:
        if rng.random() < DANCE_P["featured" if plan.drums_featured else "other"]:
            out.append(("dance", plan.drums))
    if plan.voice in ("female", "male"):
        context = "band" if plan.drums else "bare"
        _draw(rng, VOICE_TAGS[plan.voice], "voice", out)
        _draw(rng, VOICE_TAGS[f"{plan.voice} {context}"], "voice", out)
        _draw(rng, VOICE_TAGS[f"any {context}"], "voice", out)
    elif plan.voice.startswith("opera"):
        _draw(rng, VOICE_TAGS[plan.voice], "voice", out)
        _draw(rng, VOICE_TAGS["opera"], "voice", out)
    elif plan.voice == "choir":
        _draw(rng, VOICE_TAGS["choir"], "voice", out)
        choir = any(t == "choir" for t, _ in out)
        if rng.random() < (CHORAL_GIVEN_CHOIR if choir else CHORAL_ALONE):
            out.append(("choral", "voice"))
    elif rng.random() < g.no_vocal_p:  # a genre that usually has a singer, without one
        _draw(rng, NO_VOCAL_TAGS, "scene", out)
        _draw(rng, NO_VOCAL_EXTRA, "scene", out)
    if plan.bpm >= FAST_BPM:
        _draw(rng, TEMPO_TAGS["fast"], "scene", out)
    elif plan.bpm <= SLOW_BPM:
        _draw(rng, TEMPO_TAGS["slow"], "scene", out)
    if plan.level in LEVEL_TAGS:
        _draw(rng, LEVEL_TAGS[plan.level], "scene", out)
    if plan.level == "quiet" and rng.random() < SOFT_P["slow" if plan.bpm <= SLOW_BPM else "other"]:
        out.append(("soft", "scene"))
    if plan.genre == "classical":
        if len(plan.instruments) == 1 and rng.random() < SOLO_P:
            out.append(("solo", plan.instruments[0]))
            if plan.instruments[0] == "piano" and rng.random() < 0.2:
                out.append(("piano solo", "piano"))
        classic = [i for i in plan.instruments if i in CLASSIC_SOURCES]
        if classic and rng.random() < CLASSIC_P:
            out.append(("classic", classic[0]))
    # crowd-label noise on the top-50 tags
    top = set(top50)
    out = [(t, s) for t, s in out if t not in top or rng.random() >= LABEL_DROP]
    if rng.random() < LABEL_ADD:
        out.append((top50[int(rng.choice(len(top50), p=top50_p))], "noise"))
    seen: dict[str, str] = {}
    for t, s in out:
        seen.setdefault(t, s)
    return tuple(seen.items())


def plan_dataset(
    n_clips: int, seed: int = 0, broken_rate: float = BROKEN_RATE
) -> tuple[list[ClipPlan], list[dict[str, object]]]:
    """Draw the whole dataset's score: ``n_clips`` clip plans (CSV order) and their clip_info rows.

    No audio is made here; this is cheap and depends only on the arguments.
    """
    if n_clips < 1:
        raise ValueError(f"--clips must be >= 1, got {n_clips}")
    if not 0.0 <= broken_rate < 0.5:
        raise ValueError(f"--broken-rate must be in [0, 0.5), got {broken_rate}")
    rng = np.random.default_rng([seed, 0])
    top50 = load_top50_tags()
    freq = load_top50_frequency()
    top50_p = np.array([freq[t] for t in top50], float)
    top50_p /= top50_p.sum()
    tracks = _plan_tracks(n_clips, seed, rng)
    folder_of = _deal_folders(tracks, rng)
    plans: list[ClipPlan] = []
    info: list[dict[str, object]] = []
    for track in tracks:
        for m in track.segments:
            index = len(plans)
            if index >= n_clips:
                break
            plan, row = _plan_clip(track, m, index, folder_of[track.index], seed, top50, top50_p)
            plans.append(plan)
            info.append(row)
    n_broken = 0 if broken_rate == 0 else max(int(n_clips >= 200), int(round(n_clips * broken_rate)))
    for i in np.random.default_rng([seed, 3]).choice(n_clips, n_broken, replace=False):
        plans[int(i)] = dataclasses.replace(plans[int(i)], broken=True)
    return plans, info


def _plan_tracks(n_clips: int, seed: int, rng: np.random.Generator) -> list[_Track]:
    """Source tracks holding at least ``n_clips`` segments: artists -> albums -> tracks, like Magnatune's
    catalogue. Each artist plays one genre; the genre most behind its share (plus jitter) goes next, so that
    even a few hundred clips hold every genre in proportion."""
    genres = list(GENRES)
    genre_weights = np.array([GENRES[g].weight for g in genres], float)
    genre_weights /= genre_weights.sum()
    tracks: list[_Track] = []
    n, next_id = 0, 2
    per_genre = np.zeros(len(genres))
    while n < n_clips:
        genre_index = int(np.argmax(genre_weights * (n + 8) - per_genre + rng.uniform(0, 4, len(genres))))
        artist, genre = _name(rng, int(rng.integers(1, 3))), genres[genre_index]
        for _ in range(int(rng.integers(1, 3))):
            album = _name(rng, int(rng.integers(1, 4)))
            for number in range(1, int(rng.integers(1, 4)) + 1):
                if n >= n_clips:
                    break
                track, length = _sample_track(seed, len(tracks), artist, album, number, genre, next_id)
                tracks.append(track)
                next_id += 4 * length + int(rng.integers(1, 9))  # MTAT ids step by ~4 per segment
                n += len(track.segments)
                per_genre[genre_index] += len(track.segments)
    return tracks


def _deal_folders(tracks: list[_Track], rng: np.random.Generator) -> dict[int, str]:
    """Track index -> audio folder, balancing clip counts (each track's clips share a folder, like MTAT)."""
    counts = np.zeros(len(FOLDERS))
    folder_of: dict[int, str] = {}
    for t in rng.permutation(len(tracks)):
        f = int(np.argmin(counts + rng.random(len(FOLDERS)) * 0.5))
        folder_of[int(t)] = FOLDERS[f]
        counts[f] += len(tracks[t].segments)
    return folder_of


def _plan_clip(
    track: _Track, m: int, index: int, folder: str, seed: int, top50: list[str], top50_p: np.ndarray
) -> tuple[ClipPlan, dict[str, object]]:
    """(plan, clip_info row) of segment ``m`` of ``track``, CSV row ``index``: the track's scene varied per
    clip (an accompanying part or the singer may rest, the drums may be featured), drawn from the clip's own
    ``(seed, index)`` generator."""
    crng = np.random.default_rng([seed, 2, index])
    start = SEGMENT_SECONDS * m + 1
    rel = (
        f"{folder}/{track.artist}-{track.album}-{track.number:02d}-{track.title}"
        f"-{start}-{start + SEGMENT_SECONDS}.mp3"
    )
    instruments = track.instruments
    if len(instruments) > 1 and crng.random() < PART_REST_P:  # an accompanying part rests
        drop = int(crng.integers(1, len(instruments)))
        instruments = instruments[:drop] + instruments[drop + 1 :]
    voice = track.voice
    if track.genre not in VOICE_GENRE_TAGS and crng.random() < VOICE_REST_P:
        voice = ""
    level_db = LEVEL_DBFS[track.level] + float(crng.uniform(-1.5, 1.5))
    plan = ClipPlan(
        index=index,
        clip_id=track.first_id + 4 * m,
        mp3_path=rel,
        track=track.index,
        genre=track.genre,
        instruments=instruments,
        drums=track.drums,
        drums_featured=bool(track.drums) and bool(crng.random() < DRUMS_FEATURED_P),
        voice=voice,
        bpm=round(track.bpm * float(crng.uniform(0.98, 1.02)), 2),
        level=track.level,
        level_db=level_db,
        key=track.key,
        mode=track.mode,
        reverb=GENRES[track.genre].reverb,
        broken=False,
    )
    plan = dataclasses.replace(plan, tag_sources=_derive_tags(plan, crng, top50, top50_p))
    row = {
        "clip_id": plan.clip_id,
        "track_number": track.number,
        "title": track.title.replace("_", " "),
        "artist": track.artist.replace("_", " "),
        "album": track.album.replace("_", " "),
        "url": f"https://synthetic.invalid/artists/albums/{track.album}/",
        "segmentStart": start,
        "segmentEnd": start + SEGMENT_SECONDS,
        "original_url": f"https://synthetic.invalid/all/{track.number:02d}-{track.title}.mp3",
        "mp3_path": rel,
    }
    return plan, row


def drop_inaudible_tags(plan: ClipPlan, inaudible: tuple[str, ...]) -> tuple[ClipPlan, int]:
    """``plan`` without the tags of sources that were inaudible in its mix (more than :data:`INAUDIBLE_DB`
    below it, as measured by the renderer), and how many tags went."""
    if not inaudible:
        return plan, 0
    keep = tuple((t, s) for t, s in plan.tag_sources if s not in inaudible)
    return dataclasses.replace(plan, tag_sources=keep), len(plan.tag_sources) - len(keep)


def label_matrix(plans: list[ClipPlan], tags: list[str]) -> np.ndarray:
    """uint8 [n_clips, len(tags)] multi-hot of the plans' tags over ``tags``."""
    col = {t: j for j, t in enumerate(tags)}
    y = np.zeros((len(plans), len(tags)), np.uint8)
    for i, p in enumerate(plans):
        for t, _ in p.tag_sources:
            if t in col:
                y[i, col[t]] = 1
    return y
