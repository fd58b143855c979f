"""Encoder stacks. Every encoder maps ``(feats (batch, T, input_dim), feat_lens (batch,))``
to ``(enc (batch, T', output_dim), enc_lens (batch,))`` and has an ``output_dim`` attribute."""
