"""Model zoo: the registry API, with every model family registered.

    from hvd_magtag.models import create_model, get_spec, list_models
    model = create_model("samplecnn", n_tags=50)        # keras.Model, input [B, 59049], output [B, 50]

Layout (timm's ``timm/models/__init__.py`` shape: this file imports the families, the registry imports no
model code):

- :mod:`~hvd_magtag.models.spec` (ModelSpec, FbankSpec), :mod:`~hvd_magtag.models.registry`
  (register_model, create_model, ...), :mod:`~hvd_magtag.models.names` (layer names others look up);
- families, each a module of ``@register_model`` builders: :mod:`~hvd_magtag.models.raw` (waveform),
  :mod:`~hvd_magtag.models.spectral` (log-mel), :mod:`~hvd_magtag.models.musicnn` (musicnn's two families,
  whose released weights :mod:`hvd_magtag.pretrained` imports);
- :mod:`~hvd_magtag.models.layers` (one Keras layer per file; their TensorFlow arithmetic in
  :mod:`~hvd_magtag.models.kernels`) and :mod:`~hvd_magtag.models.blocks` (functional blocks built from
  them), used by the builders; :mod:`~hvd_magtag.models.weights` reads weights files of either layout.

A new family is a module ``hvd_magtag/models/<family>.py`` whose builders are decorated with
``@register_model(spec=...)`` and import Keras inside the builder, plus one import line below.

Importing this package (or any of spec, registry, names) does not import TensorFlow: the family modules
only declare specs and options at import time, their builders import Keras when called, so ``--help``,
model listings and option errors stay fast.
"""

from hvd_magtag.models import musicnn, raw, spectral  # noqa: F401  (the families: their decorators fill the registry)
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
