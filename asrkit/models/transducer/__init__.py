"""Transducer (RNN-T, Graves 2012) building blocks: prediction networks
(``stateless_prediction``, ``lstm_prediction``), the ``joiner``, the loss with a bound on the
joint's memory (``loss``) and ``head``, which bundles them into the one component a joint
model holds (training loss + the decoding interface of asrkit.decoding.transducer_*)."""
