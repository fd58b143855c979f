"""Streaming recognition (WeNet U2, Zhang et al. 2020; WeNet's ``ctc_prefix_beam_search``
over chunks and ``attention_rescoring`` as the second pass): audio goes in as it arrives,
the current best text comes out after every chunk, and the final text when the audio ends.

    recognizer = StreamingRecognizer.from_experiment(load_experiment("exp/streaming"),
                                                     chunk_size=16, rescore=True)
    for samples in microphone:                  # (n,) float audio at the model's rate
        partial = recognizer.accept(samples)    # the best text so far
    text = recognizer.finish()                  # the last (shorter) chunk, then rescoring

The path of one utterance (batch of one):

- fbank frames as the audio arrives, equal to the offline features
  (asrkit.data.streaming_features.StreamingFbank, with CMVN);
- every ``chunk_size`` encoder frames, the encoder's input window for them
  ((chunk_size-1)*factor + right_context + 1 fbank frames, asrkit.models.chunk_by_chunk) goes
  through ``encoder.forward_chunk`` with the attention and convolution caches of the
  chunks before (left_chunks of them, -1: all); the window then moves on by
  chunk_size*factor frames;
- the chunk's CTC log-probabilities advance a CTC prefix beam search carried over chunks
  (asrkit.decoding.ctc_prefix_beam.CTCPrefixBeamSearchState); its best prefix is the
  partial text;
- ``finish`` runs the frames left (a last, shorter chunk, when they give an encoder frame)
  and returns the prefix beam search's best, or with ``rescore`` the N-best rescored by the
  attention decoder against the whole utterance's encoder output (the chunks'
  concatenated; asrkit.decoding.attention_rescoring.rescore_nbest).

The chunks' encoder output equals the encoder's full forward under the chunk mask
(``asrkit decode decoding_chunk_size=N``), so the final text is that decode's text for the
same audio. Needs a causal-capable encoder (``encoder.causal: true`` on the Conformers; the
Transformer always is) and a CTC head; transducer-only models do not stream yet.
"""

from __future__ import annotations

import torch

from asrkit.data.cmvn import GlobalCMVN
from asrkit.data.features import FbankExtractor
from asrkit.data.streaming_features import StreamingFbank
from asrkit.decoding.attention_rescoring import rescore_nbest
from asrkit.decoding.ctc_prefix_beam import CTCPrefixBeamSearchState
from asrkit.decoding.hypothesis import Hypothesis
from asrkit.models.chunk_by_chunk import LayerCaches, input_window
from asrkit.text.base import Tokenizer


def check_streamable(model) -> None:
    """A ValueError naming the config key when ``model`` cannot be decoded chunk by chunk."""
    encoder = model.encoder
    if not hasattr(encoder, "forward_chunk"):
        raise ValueError(f"encoder: {type(encoder).__name__} cannot stream (streaming "
                         f"encoders: conformer, transformer, moe_conformer)")
    if any(getattr(m, "causal", True) is False for m in encoder.modules()):
        raise ValueError("encoder.causal: the model was trained with a non-causal convolution "
                         "(encoder.causal: false) and cannot stream; train it with "
                         "+experiment=synth/conformer_streaming or encoder.causal=true")
    if getattr(model, "ctc", None) is None:
        raise ValueError("model: streaming needs a CTC head (transducer-only models do not "
                         "stream yet)")


class StreamingRecognizer:
    def __init__(self, model, tokenizer: Tokenizer, extractor: FbankExtractor,
                 cmvn: GlobalCMVN | None, chunk_size: int, left_chunks: int = -1,
                 beam: int = 10, rescore: bool = False, ctc_weight: float = 0.3,
                 device: str | torch.device = "cpu") -> None:
        """model: an ASRModel (eval) on ``device``; chunk_size: encoder frames per chunk
        (>= 1; larger than the utterance: one chunk, full context); left_chunks: chunks of
        left context (-1: all); beam: of the CTC prefix beam search and the N-best
        rescored; rescore: attention rescoring at ``finish`` (needs an attention decoder)
        with weight ``ctc_weight`` on CTC."""
        check_streamable(model)
        if rescore and model.decoder is None:
            raise ValueError("rescore: the model has no attention decoder (a CTC-only model)")
        if chunk_size < 1:
            raise ValueError(f"chunk_size: must be >= 1 encoder frames (one larger than the "
                             f"utterance decodes it whole), got {chunk_size}")
        if left_chunks < -1:
            raise ValueError(f"left_chunks must be >= -1 (-1: all), got {left_chunks}")
        self.model, self.tokenizer, self.device = model, tokenizer, torch.device(device)
        self.extractor, self.cmvn = extractor, cmvn
        self.chunk_size, self.left_chunks = chunk_size, left_chunks
        self.beam, self.rescore, self.ctc_weight = beam, rescore, ctc_weight
        layer = model.encoder.input_layer
        self.window, self.stride = input_window(layer, chunk_size)
        self.context = layer.right_context + 1  # input frames of one encoder frame
        self.reset()

    @classmethod
    def from_experiment(cls, exp, chunk_size: int, **options) -> StreamingRecognizer:
        """From asrkit.decoding.experiment.load_experiment's result; options as __init__."""
        device = next(exp.model.parameters()).device
        return cls(exp.model, exp.tokenizer, exp.extractor, exp.cmvn, chunk_size,
                   device=device, **options)

    def reset(self) -> None:
        """Start a new utterance."""
        self.fbank = StreamingFbank(self.extractor, self.cmvn)
        self.feats = torch.zeros(0, self.extractor.num_mel_bins)  # (frames, bins) not yet run
        self.att_cache: LayerCaches = []
        self.cnn_cache: LayerCaches = []
        self.offset = 0                        # encoder frames so far
        self.encoded: list[torch.Tensor] = []  # (1, Q, D) per chunk, for rescoring
        self.search = CTCPrefixBeamSearchState(1, self.model.vocab_size, self.beam,
                                               self.model.blank_id, device=self.device)
        self.chunks = 0                        # chunks run so far
        self.finished = False
        self._partial = ""

    @torch.inference_mode()
    def accept(self, samples: torch.Tensor) -> str:
        """Feed (n,) float audio in [-1, 1] at the model's rate (any n); -> the best text so
        far (unchanged until a chunk's frames are complete)."""
        if self.finished:
            raise RuntimeError("accept after finish: call reset() for a new utterance")
        self.feats = torch.cat([self.feats, self.fbank.accept(torch.as_tensor(samples))])
        while self.feats.size(0) >= self.window:
            self._run_chunk(self.feats[: self.window])
            self.feats = self.feats[self.stride:]
        return self.partial()

    @torch.inference_mode()
    def finish(self) -> str:
        """The audio has ended: run the frames left, -> the final text."""
        if not self.finished:
            if self.feats.size(0) >= self.context:  # enough for one more encoder frame
                self._run_chunk(self.feats)
            self.feats = self.feats[:0]
            self.finished = True
        return self.tokenizer.decode(self.final_hypothesis().tokens)

    def partial(self) -> str:
        """The best text of the CTC prefix beam search so far."""
        return self._partial

    def final_hypothesis(self) -> Hypothesis:
        """The prefix beam search's best, or the rescored N-best's best with ``rescore``."""
        nbest = self.search.nbest()
        if self.rescore and self.encoded and nbest[0]:
            enc = torch.cat(self.encoded, dim=1)  # (1, T', D)
            lens = torch.tensor([enc.size(1)], device=enc.device)
            nbest = rescore_nbest(self.model, enc, lens, nbest, self.ctc_weight)
        return nbest[0][0] if nbest[0] else Hypothesis((), 0.0)

    def _run_chunk(self, window: torch.Tensor) -> None:
        """window (W, bins) fbank frames -> the encoder chunk, its CTC frames searched."""
        chunk = window.to(self.device).unsqueeze(0)  # (1, W, bins)
        enc, self.att_cache, self.cnn_cache = self.model.encoder.forward_chunk(
            chunk, self.offset, self.att_cache, self.cnn_cache, self.left_chunks)  # (1, Q, D)
        self.offset += enc.size(1)
        self.chunks += 1
        if self.rescore:
            self.encoded.append(enc)
        log_probs = self.model.ctc_log_probs(enc)  # (1, Q, V)
        self.search.advance(log_probs, torch.tensor([enc.size(1)], device=self.device))
        best = self.search.nbest(1)[0]
        self._partial = self.tokenizer.decode(best[0].tokens) if best else ""
