"""Encoder stacks: Transformer, Conformer, MoE-Conformer, ContextNet. Each fulfils the
encoder contract of asrkit.models.encoder_interface: ``(feats, feat_lens) -> (enc,
enc_lens)``, ``output_dim``, ``output_lengths(lengths)`` (its frame-rate reduction, which the
data loader's token filter uses), and for training-time losses on intermediate layers
(InterCTC, intermediate decoders) and the encoder's own losses (MoE balance)
``intermediate_dims()`` and ``forward_with_intermediates(feats, feat_lens, layers) ->
EncoderOutput`` (asrkit.models.encoder_output)."""
