"""Layer names the rest of the toolkit looks models up by: the one home of each (no TensorFlow here).

Every registered model follows these conventions (tests/test_models.py checks them):

- :data:`OUTPUT_LAYER` ``"tags"``: the last layer, per-tag sigmoid probabilities ``[B, n_tags]`` (kept
  float32 under mixed precision; the layer a fine-tuning run replaces for a new vocabulary).
- :data:`EMBEDDING_LAYER` ``"embedding"``: the feature vector the classifier reads, ``[B, D]`` per window
  (``tag``/``export`` return it; in superpool models it lives in the window encoder).
- superpool models hold the sub-model :data:`WINDOW_ENCODER` (one window in, its embedding out) between
  :data:`FOLD_WINDOWS` (``[B, W, ...] -> [B * W, ...]``) and :data:`UNFOLD_WINDOWS`
  (``[B * W, D] -> [B, W, D]``), then :data:`WINDOW_POOL` (``[B, W, D] -> [B, D]``).
- raw-waveform models: :data:`FRAME_CONV` ``"conv0"`` is the strided sample-level frame conv; conv layers
  are ``conv{i}`` / ``block{i}_...`` in input-to-output order.
"""

OUTPUT_LAYER = "tags"
EMBEDDING_LAYER = "embedding"
WINDOW_ENCODER = "window_encoder"
FOLD_WINDOWS = "fold_windows"
UNFOLD_WINDOWS = "unfold_windows"
WINDOW_POOL = "window_pool"
FRAME_CONV = "conv0"
