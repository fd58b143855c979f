"""The ``transducer`` config section's builder: a TransducerHead from flat options
(conf/transducer/{lstm,stateless}.yaml), as the joint model's third branch beside CTC and
the attention decoder.

    head = transducer_head(vocab_size=1024, encoder_dim=256, prediction="lstm",
                           prediction_dim=640, joint_dim=640)

``vocab_size`` and ``encoder_dim`` are filled in by the model builder (asrkit.models.build).
"""

from __future__ import annotations

from typing import Annotated

from asrkit.arg_types import NonNegativeInt, OneOf, PositiveInt, Probability
from asrkit.models.transducer.head import TransducerHead
from asrkit.models.transducer.joiner import Joiner
from asrkit.models.transducer.lstm_prediction import LSTMPredictionNetwork
from asrkit.models.transducer.stateless_prediction import StatelessPredictionNetwork

# the options only one prediction network reads (the other builds without them)
PREDICTION_ONLY = {"prediction_layers": "lstm", "embedding_dim": "lstm", "dropout": "lstm",
                   "context_size": "stateless"}


def transducer_head(
    vocab_size: PositiveInt,
    encoder_dim: PositiveInt,
    prediction: Annotated[str, OneOf("lstm", "stateless")] = "lstm",
    prediction_dim: PositiveInt = 640,
    prediction_layers: PositiveInt = 1,
    embedding_dim: PositiveInt | None = None,
    context_size: PositiveInt = 2,
    dropout: Probability = 0.1,
    joint_dim: PositiveInt = 640,
    max_joint_elements: NonNegativeInt = 0,
    blank_id: NonNegativeInt = 0,
) -> TransducerHead:
    """prediction: ``lstm`` (an LSTM of ``prediction_layers`` layers of ``prediction_dim``
    units over embeddings of ``embedding_dim``, null: ``prediction_dim``; Gulati et al.
    2020, Han et al. 2020) or ``stateless`` (an embedding of
    ``prediction_dim`` and a 1-D convolution over the last ``context_size`` labels; Ghodsi et
    al. 2020); joint_dim: the joiner's hidden size; max_joint_elements: the joint's memory
    budget in elements per chunk of utterances (0: the whole batch at once). The options of
    the other prediction network (``PREDICTION_ONLY``) are ignored, so that a preset's
    LSTM options do no harm under ``transducer=stateless``; ``asrkit train`` warns about
    them when given on its command line."""
    if prediction == "lstm":
        network = LSTMPredictionNetwork(vocab_size, prediction_dim, prediction_layers,
                                        embedding_dim, dropout=dropout, blank_id=blank_id)
    else:
        network = StatelessPredictionNetwork(vocab_size, prediction_dim, context_size,
                                             blank_id=blank_id)
    joiner = Joiner(encoder_dim, network.output_dim, vocab_size, joint_dim)
    return TransducerHead(network, joiner, blank_id, max_joint_elements or None)
