"""Model zoo: the registry API (see :mod:`hvd_magtag.models.registry`).

    from hvd_magtag.models import create_model, get_spec, list_models
    model = create_model("samplecnn", n_tags=50)        # keras.Model, input [B, 59049], output [B, 50]

Models live in :mod:`~hvd_magtag.models.raw` (waveform) and :mod:`~hvd_magtag.models.spectral` (log-mel);
layers and blocks in :mod:`~hvd_magtag.models.blocks`. Importing this package does not import TensorFlow.
"""

from hvd_magtag.models.registry import (
    DEFAULT_SAMPLE_RATE,
    FbankSpec,
    ModelEntry,
    ModelSpec,
    create_model,
    get_entry,
    get_spec,
    list_models,
    register_model,
    split_overrides,
)

__all__ = [
    "DEFAULT_SAMPLE_RATE",
    "FbankSpec",
    "ModelEntry",
    "ModelSpec",
    "create_model",
    "get_entry",
    "get_spec",
    "list_models",
    "register_model",
    "split_overrides",
]
