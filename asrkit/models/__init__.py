"""Model zoo: one building block per file; encoders/ and decoders/ hold the stacks,
transducer/ the transducer branch (prediction networks, joiner, loss, the head that bundles
them; the ``transducer`` config group).

Build a model from a config with ``asrkit.models.build.build_model``; see
``asrkit.models.asr_model.ASRModel`` for the training and decoding interface.
"""
