"""Encoder stacks. Every encoder maps ``(feats (batch, T, input_dim), feat_lens (batch,))``
to ``(enc (batch, T', output_dim), enc_lens (batch,))`` and has an ``output_dim`` attribute
and a ``subsampling`` one (input frames per output frame: 4, 6 or 8 for the conv2d input
layers, 1 for ``linear``, 8 for ContextNet), which ``data.filters.subsampling`` must equal
(asrkit.training.config_check).

For training-time losses on intermediate layers (InterCTC, intermediate decoders) and the
encoder's own losses (MoE balance), each also has ``intermediate_dims()`` and
``forward_with_intermediates(feats, feat_lens, layers) -> EncoderOutput``
(asrkit.models.encoder_output)."""
