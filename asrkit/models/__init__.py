"""Model zoo: one building block per file; encoders/ and decoders/ hold the stacks.

Build a model from a config with ``asrkit.models.build.build_model``; see
``asrkit.models.asr_model.ASRModel`` for the training and decoding interface.
"""
