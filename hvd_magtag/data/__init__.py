"""Dataset catalogs: ``load_catalog(data_cfg)`` dispatches on ``data_cfg.dataset`` to one loader module.

=========== ================================= ===============================================================
dataset     loader                            metadata read
=========== ================================= ===============================================================
mtat        :func:`hvd_magtag.data.mtat.load`  ``annotations_final.csv`` (+ ``clip_info_final.csv``)
synthetic   the MTAT loader                    the same files, under ``locations.dataset_dir("synthetic")`` by default
jamendo     :mod:`hvd_magtag.data.jamendo`     ``splits/split-N/autotagging_*-{train,validation,test}.tsv``
fma         :mod:`hvd_magtag.data.fma`         ``fma_metadata/tracks.csv`` + ``genres.csv``
folder      :mod:`hvd_magtag.data.folder`      any folder of audio files, optional ``tags.csv``
=========== ================================= ===============================================================

Every loader returns a :class:`~hvd_magtag.data.catalog.Catalog` whose splits are named train | valid | test
(or "" when the data has no split) and whose ``excluded`` lists every clip left out with the reason: known
broken files, rows whose audio file is missing, clips without a tag of the vocabulary under a "clean" rule.
No audio is decoded here; :mod:`hvd_magtag.data.manifest` validates the files themselves.

This module also holds the rules all loaders share: how ``data.vocabulary`` picks the tags
(:func:`choose_vocabulary`), how a tag list file is read (:func:`read_tag_list`) and how rows whose audio
file is missing are set aside (:func:`drop_missing_audio`).
"""

from __future__ import annotations

import importlib
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from hvd_magtag.audio.formats import AUDIO_SUFFIXES  # the one table of formats (re-exported)
from hvd_magtag.config import DATASETS, SPLITS, ConfigError, check_choice
from hvd_magtag.data.catalog import Catalog, Clip, MetadataError

if TYPE_CHECKING:
    from hvd_magtag.config import DataConfig

log = logging.getLogger(__name__)

#: data.dataset -> "module:function" taking a DataConfig (imported on use, so one loader's imports never
#: slow down another's); the names are hvd_magtag.config.DATASETS (its declared choices).
LOADERS: dict[str, str] = {
    "mtat": "hvd_magtag.data.mtat:from_config",
    "synthetic": "hvd_magtag.data.mtat:synthetic_from_config",
    "jamendo": "hvd_magtag.data.jamendo:from_config",
    "fma": "hvd_magtag.data.fma:from_config",
    "folder": "hvd_magtag.data.folder:from_config",
}


_TOP_N = re.compile(r"top(\d+)")


def load_catalog(data_cfg: DataConfig, *, check_audio: bool = True) -> Catalog:
    """The catalog ``data_cfg`` describes (see the table above for what each dataset reads).

    ``check_audio=False`` reads metadata only (no file-existence check), e.g. to count clips before the
    audio is downloaded.
    """
    target = LOADERS[check_choice(data_cfg.dataset, DATASETS, "data.dataset")]
    module_name, function_name = target.split(":")
    loader: Callable[..., Catalog] = getattr(importlib.import_module(module_name), function_name)
    catalog = loader(data_cfg, check_audio=check_audio)
    log.info(
        "%s catalog: %d tags, splits %s, %d clips left out%s",
        catalog.name,
        catalog.n_tags,
        catalog.split_counts(),
        len(catalog.excluded),
        _reason_summary(catalog.excluded),
    )
    return catalog


def _reason_summary(excluded: list[tuple[str, str]]) -> str:
    if not excluded:
        return ""
    counts = Counter(reason.split(":")[0] for _, reason in excluded)
    return " (" + "; ".join(f"{n} {reason}" for reason, n in counts.most_common()) + ")"


def read_tag_list(path: str | Path) -> list[str]:
    """Tags from a text file: one tag per line, in model output order; blank lines and ``#`` comments skipped.

    Raises :class:`MetadataError` (file and line) for a duplicate tag or an empty list.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise MetadataError(f"{path}: cannot read tag list ({e.strerror})") from None
    tags: list[str] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        tag = line.strip()
        if not tag or tag.startswith("#"):
            continue
        if tag in seen:
            raise MetadataError(f"{path}:{lineno}: tag {tag!r} repeats line {seen[tag]}; list each tag once")
        seen[tag] = lineno
        tags.append(tag)
    if not tags:
        raise MetadataError(f"{path}: no tags; expected one tag per line")
    return tags


def read_shipped_table(path: str | Path) -> list[tuple[str, str, int]]:
    """(first field, second field, line) of a shipped two-column TSV (:mod:`hvd_magtag.resources`).

    Blank lines, ``#`` comments and the first non-comment line (the header) are skipped.
    """
    path = Path(path)
    rows: list[tuple[str, str, int]] = []
    header_seen = False
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        if not header_seen:
            header_seen = True
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise MetadataError(f"{path}:{lineno}: expected two tab-separated fields, got {line!r}")
        rows.append((fields[0], fields[1], lineno))
    return rows


def choose_vocabulary(
    spec: str,
    counts: Mapping[str, int],
    *,
    source: str,
    canonical_top50: list[str] | None = None,
    other_choices: str = "",
) -> list[str]:
    """The tag vocabulary named by ``data.vocabulary``, in model output order.

    - ``"topN"`` (``top20``, ``top50``...): the N most frequent tags of ``counts`` (tag -> number of clips,
      in the dataset's own column order, which breaks ties); ``"top50"`` is ``canonical_top50`` when given
      (a published list shipped in :mod:`hvd_magtag.resources`).
    - a path to a tag list file (:func:`read_tag_list`): exactly those tags; each must be one of ``counts``.

    ``source`` names the metadata file the tags come from (for messages); ``other_choices`` documents
    dataset-specific values the caller handles itself (shown in the error for an unknown spec).
    """
    m = _TOP_N.fullmatch(spec)
    if m:
        n = int(m.group(1))
        if n < 1:
            raise ConfigError(f"data.vocabulary={spec!r}: N must be at least 1")
        if canonical_top50 is not None and n == 50:
            tags = list(canonical_top50)
        else:
            if n > len(counts):
                raise ConfigError(
                    f"data.vocabulary={spec!r}: {source} has only {len(counts)} tags; choose N <= {len(counts)}"
                )
            order = {tag: i for i, tag in enumerate(counts)}
            tags = sorted(counts, key=lambda t: (-counts[t], order[t]))[:n]
    elif spec and os.path.isfile(spec):
        tags = read_tag_list(spec)
    else:
        choices = "topN (e.g. top50, top20), a tag list file (one tag per line)"
        if other_choices:
            choices += ", " + other_choices
        raise ConfigError(f"data.vocabulary={spec!r} is neither {choices}; no such file either")
    unknown = [t for t in tags if t not in counts]
    if unknown:
        where = spec if os.path.isfile(spec) else "the shipped top-50 list"
        raise MetadataError(
            f"{where}: tag(s) {', '.join(map(repr, unknown[:5]))} not in {source}; "
            f"known tags include {', '.join(map(repr, list(counts)[:5]))}"
        )
    return tags


def drop_missing_audio(
    clips: Iterable[Clip], *, metadata: str | Path, dataset: str
) -> tuple[list[Clip], list[tuple[str, str]]]:
    """Split ``clips`` into (those whose audio file exists, [(clip_id, "missing audio file: <path>")]).

    Raises ``FileNotFoundError`` when not a single listed file exists (the audio is not there at all: a
    wrong root rather than a few missing files); the message says where to get it.
    """
    kept: list[Clip] = []
    missing: list[tuple[str, str]] = []
    for clip in clips:
        if os.path.isfile(clip.path):
            kept.append(clip)
        else:
            missing.append((clip.clip_id, f"missing audio file: {clip.path}"))
    if missing and not kept:
        raise FileNotFoundError(
            f"none of the {len(missing)} audio files listed in {metadata} exists (first: "
            f"{missing[0][1].split(': ', 1)[1]}); put the audio there (see datasets/{dataset}/README.md in the hvd_magtag source repository) "
            "or load with check_audio=False for metadata only"
        )
    if missing:
        log.warning(
            "%s: %d listed audio files are missing (left out; see catalog.excluded)", metadata, len(missing)
        )
    return kept, missing


def resolve_root(root: str, *, option: str = "data.root", what: str) -> Path:
    """``root`` as an absolute path; a one-line error naming ``option`` if it is empty or not a folder."""
    if not root:
        raise ConfigError(f"{option} is empty; set it to {what}")
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise ConfigError(f"{option}={root!r}: no such folder; set it to {what}")
    return path


__all__ = [
    "AUDIO_SUFFIXES",
    "LOADERS",
    "SPLITS",
    "Catalog",
    "Clip",
    "MetadataError",
    "choose_vocabulary",
    "drop_missing_audio",
    "load_catalog",
    "read_shipped_table",
    "read_tag_list",
    "resolve_root",
]
