"""A search method: what ``asrkit decode`` runs on a batch of encoder outputs, configured as
models are. Each method is a class (beside its algorithm; the transducer's four share
transducer_search.py) whose annotated fields are its options; ``conf/search/<name>.yaml``
names the class with ``_target_`` and gives the option values, and ``asrkit decode
methods=[<name>,...]`` picks sections of ``search.<name>`` (asrkit.decoding.plan).

    method = instantiate({"_target_": "asrkit.decoding.attention_rescoring.AttentionRescoring",
                          "beam": 20, "ctc_weight": 0.5})
    nbest = method(model, enc, enc_lens, ctc_log_probs)   # per utterance, best first

A method declares whether it needs the attention decoder and the CTC log-probabilities
(computed once per batch for all methods that need them), and its ``settings()``: the
options that shape its output, recorded with every result and part of the result's
directory name, so two decodes with other settings never overwrite each other.

A new method is one file with a ``SearchMethod`` subclass (a dataclass) plus one YAML file
in ``conf/search/`` (or in a directory given with ``--config-dir``).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

from asrkit.decoding.hypothesis import NBest


class SearchMethod(ABC):
    needs_decoder: ClassVar[bool] = False     # uses the attention decoder
    needs_ctc: ClassVar[bool] = False         # uses the CTC log-probabilities
    needs_transducer: ClassVar[bool] = False  # uses the transducer branch

    @abstractmethod
    def __call__(self, model: Any, enc: torch.Tensor, enc_lens: torch.Tensor,
                 ctc_log_probs: torch.Tensor | None) -> list[NBest]:
        """enc (B, T', D), enc_lens (B,) each >= 1, ctc_log_probs (B, T', V) or None when
        ``needs_ctc`` is False -> per utterance an N-best list, best first."""

    def settings(self) -> dict[str, Any]:
        """The options that shape the output, by name (a dataclass's fields by default)."""
        return dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}


def max_output_lengths(enc_lens: torch.Tensor, ratio: float) -> torch.Tensor:
    """(B,) output-length limits of attention/joint search: ceil(ratio x encoder frames)."""
    return (enc_lens.double() * ratio).ceil().long().clamp(min=1)
