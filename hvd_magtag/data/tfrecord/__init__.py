"""Pre-extracted TFRecords: decode once, train many times.

    python -m hvd_magtag.data.tfrecord --dataset synthetic --model samplecnn --format raw --out DIR [--shards 8]

writes, for every split, ``DIR/<split>-00000-of-00008.tfrecord ...`` and ``DIR/index.json`` (format, model,
spec, tags, counts per split, files). Four formats (the study's comparison):

=============== ======================================================================= ====================
format          one record per clip holds (float32)                                     feeds
=============== ======================================================================= ====================
raw             the whole clip, mono, at ``spec.sample_rate``: ``[samples]``            raw and fbank models
fbank           python_speech_features logfbank of the whole clip: ``[frames, n_mels]`` fbank models
windowed-raw    the clip's windows: ``[k, window]``                                     raw models
windowed-fbank  logfbank of each window: ``[k, frames, n_mels]``                        fbank models
=============== ======================================================================= ====================

Windowed formats hold all consecutive windows (split models) or the ``n_windows`` evenly spaced ones
(superpool models), cut exactly as the audio pipeline cuts them. Audio is decoded by the same graph ops as
:mod:`hvd_magtag.data.pipeline`; fbank values come from python_speech_features, the reference.

Reading back (``train_dataset(..., tfrecord_dir=DIR)`` / ``eval_dataset``) feeds the same tail and models:

- raw: the identical waveform goes through the same windows and features: identical model inputs.
- fbank: windows are frame slices of the clip's filterbank at the same (hop-aligned) starts as the audio
  path. Interior frames equal the audio path's to :data:`~hvd_magtag.features.REFERENCE_TOLERANCE`; the
  first frame of a window differs (the audio path pre-emphasises from the window's first sample, the
  full-clip filterbank from the previous sample) and so does the last when ``window - win_length`` is not a
  multiple of the hop (the audio path zero-pads that frame).
- windowed-*: ``windows="all"`` (split) and superpool inputs equal the audio path's (fbank within the
  tolerance); training picks a random stored window (the audio path crops anywhere); ``windows=N`` picks N
  evenly spaced stored windows (the audio path spaces N windows over the clip itself).

One module per side: :mod:`~hvd_magtag.data.tfrecord.layout` (index and record layout),
:mod:`~hvd_magtag.data.tfrecord.extract` (writing, the command line), :mod:`~hvd_magtag.data.tfrecord.read`
(training and evaluation examples).

Records are matched to the given clips by ``clip_id``, so labels are the catalog's metadata rows; records of
clips not in the list (e.g. left out by a later validation) are skipped. Training streams shuffle shard
files per epoch by (seed, epoch) and records within consecutive blocks of :data:`SHUFFLE_RECORDS` (a
stateless shuffle keyed by seed, epoch and block); ranks read disjoint shard files (or every ``size``-th record when there are fewer files than ranks) and draw the
same number of batches from an endless stream. ``start_step`` skips whole epochs without reading (the index
lists each file's clips) and then at most one epoch of records, before their audio is parsed.
"""

from hvd_magtag.data.tfrecord.extract import extract, main
from hvd_magtag.data.tfrecord.layout import (
    FORMATS,
    INDEX_FILE,
    INDEX_VERSION,
    check_compatible,
    load_index,
    parse_record,
)
from hvd_magtag.data.tfrecord.read import INTERLEAVE_FILES, SHUFFLE_RECORDS, eval_examples, train_examples

__all__ = [
    "FORMATS",
    "INDEX_FILE",
    "INDEX_VERSION",
    "INTERLEAVE_FILES",
    "SHUFFLE_RECORDS",
    "check_compatible",
    "eval_examples",
    "extract",
    "load_index",
    "main",
    "parse_record",
    "train_examples",
]
