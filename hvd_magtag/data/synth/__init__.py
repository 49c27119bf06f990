"""A synthetic dataset in the exact MagnaTagATune layout, with tags you can hear.

``python -m hvd_magtag.data.synth --out DIR --clips N [--seconds S] [--seed K] [--workers W]`` writes::

    DIR/0 … DIR/9, DIR/a … DIR/f        16 folders of 16 kHz mono mp3 clips (tfio.audio.encode_mp3)
    DIR/annotations_final.csv           tab-separated, every field double-quoted, CRLF, "clip_id", the 188
                                        MTAT tag columns in the real order, "mp3_path"; clip ids increasing
                                        and not contiguous; mp3_path = <hex folder>/<artist>-<album>-
                                        <track#>-<title>-<segStart>-<segEnd>.mp3
    DIR/clip_info_final.csv             clip_id, track_number, title, artist, album, url, segmentStart,
                                        segmentEnd, original_url, mp3_path (same quoting; urls are fake)
    DIR/synth.json                      the generation parameters and summary (reused when unchanged)

so every MTAT reader (directory split: folders 0-b train, c valid, d-f test) works on it unchanged.
The files are byte-identical for any ``--workers``.

One module per job:

=============================================== ===========================================================
:mod:`~hvd_magtag.data.synth.scene`             the scene and label model: genres, what they play, what
                                                annotators say (:func:`plan_dataset`, :class:`ClipPlan`)
:mod:`~hvd_magtag.data.synth.music`             scales, chords, melodies, rhythms: the notes each part plays
:mod:`~hvd_magtag.data.synth.instruments`       instrument DSP and the mix (:func:`render`)
:mod:`~hvd_magtag.data.synth.writer`            the process pool, mp3 encoding, the CSV files, the CLI
                                                (:func:`generate`, :func:`main`)
=============================================== ===========================================================
"""

from hvd_magtag.data.synth.instruments import SR, render
from hvd_magtag.data.synth.scene import (
    ACCOMPANIMENT_RULES,
    BROKEN_RATE,
    FAST_BPM,
    GENRES,
    INAUDIBLE_DB,
    KIT_TAGS,
    LABEL_ADD,
    LABEL_DROP,
    LEVEL_DBFS,
    LEVEL_TAGS,
    NO_VOCAL_EXTRA,
    NO_VOCAL_TAGS,
    SLOW_BPM,
    TAG_RULES,
    TEMPO_BPM,
    TEMPO_TAGS,
    VOICE_GENRE_TAGS,
    VOICE_TAGS,
    ClipPlan,
    Genre,
    label_matrix,
    plan_dataset,
)
from hvd_magtag.data.synth.writer import (
    DEFAULT_SECONDS,
    STAMP,
    Summary,
    encode_mp3,
    generate,
    main,
    write_annotations,
)

__all__ = [
    "ACCOMPANIMENT_RULES",
    "BROKEN_RATE",
    "DEFAULT_SECONDS",
    "FAST_BPM",
    "GENRES",
    "INAUDIBLE_DB",
    "KIT_TAGS",
    "LABEL_ADD",
    "LABEL_DROP",
    "LEVEL_DBFS",
    "LEVEL_TAGS",
    "NO_VOCAL_EXTRA",
    "NO_VOCAL_TAGS",
    "SLOW_BPM",
    "SR",
    "STAMP",
    "TAG_RULES",
    "TEMPO_BPM",
    "TEMPO_TAGS",
    "VOICE_GENRE_TAGS",
    "VOICE_TAGS",
    "ClipPlan",
    "Genre",
    "Summary",
    "encode_mp3",
    "generate",
    "label_matrix",
    "main",
    "plan_dataset",
    "render",
    "write_annotations",
]
