"""Streaming recognition (WeNet U2, Zhang et al. 2020; WeNet's ``ctc_prefix_beam_search``
over chunks and ``attention_rescoring`` as the second pass; for transducers the greedy or
modified beam search carried over chunks, Graves 2012): audio goes in as it arrives, the
current best text comes out after every chunk, and the final text when the audio ends.

    recognizer = StreamingRecognizer.from_experiment(load_experiment("exp/streaming"),
                                                     chunk_size=16, rescore=True)
    for samples in microphone:                  # (n,) float audio at the model's rate
        partial = recognizer.accept(samples)    # the best text so far
    text = recognizer.finish()                  # the last (shorter) chunk, then rescoring
    transcript = recognizer.transcript("mic")   # with word and token times (json, srt, ctm)

The path of one utterance (batch of one):

- fbank frames as the audio arrives, equal to the offline features
  (asrkit.data.streaming_features.StreamingFbank, with CMVN);
- every ``chunk_size`` encoder frames, the encoder's input window for them
  ((chunk_size-1)*factor + right_context + 1 fbank frames, asrkit.models.chunk_by_chunk) goes
  through ``encoder.forward_chunk`` with the attention and convolution caches of the
  chunks before (left_chunks of them, -1: all); the window then moves on by
  chunk_size*factor frames;
- the chunk's encoder output advances the search carried over chunks
  (asrkit.inference.streaming_search), chosen by ``method``: ``ctc_prefix_beam`` (the CTC
  prefix beam search over the chunk's CTC log-probabilities), ``transducer_greedy`` or
  ``transducer_modified_beam`` (the transducer's searches, the prediction network's state
  carried over). The default is the transducer's modified beam search when the model has a
  transducer (a transducer alone or a hybrid, as offline transcription defaults), else the
  CTC prefix beam search; its best hypothesis is the partial text;
- ``finish`` runs the frames left (a last, shorter chunk, when they give an encoder frame)
  and returns the search's best, or with ``rescore`` its N-best rescored with the attention
  decoder against the whole utterance's encoder output (the chunks' concatenated): attention
  rescoring of the CTC N-best, or for a transducer search the hybrid rescoring of
  ``asrkit decode``'s ``transducer_rescoring`` (transducer, CTC and attention scores);
- ``transcript`` times the final hypothesis as offline transcription does (CTC forced
  alignment for the CTC search, the labels' emission frames for a transducer search).

The chunks' encoder output equals the encoder's full forward under the chunk mask
(``asrkit decode decoding_chunk_size=N``), so the final text is that decode's text for the
same audio. Needs a causal-capable encoder (``encoder.causal: true`` on the Conformers; the
Transformer always is).
"""

from __future__ import annotations

import numpy as np
import torch

from asrkit.data.audio import AudioError, float_samples, to_mono
from asrkit.data.cmvn import GlobalCMVN
from asrkit.data.features import FbankExtractor
from asrkit.data.streaming_features import StreamingFbank
from asrkit.decoding.hypothesis import Hypothesis
from asrkit.inference.alignment import FrameTiming
from asrkit.inference.result import Transcript
from asrkit.inference.stitching import Stitcher, WindowHypothesis
from asrkit.inference.streaming_search import (
    check_streaming_method,
    default_streaming_method,
    streaming_search,
)
from asrkit.inference.words import WordBuilder
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
    if getattr(model, "ctc", None) is None and getattr(model, "transducer", None) is None:
        raise ValueError("model: streaming needs a CTC head or a transducer")


DEFAULT_CHUNK_SIZE = 16  # encoder frames per chunk (0.64 s at 40 ms a frame)

class StreamingRecognizer:
    def __init__(self, model, tokenizer: Tokenizer, extractor: FbankExtractor,
                 cmvn: GlobalCMVN | None, chunk_size: int, left_chunks: int = -1,
                 beam: int = 10, rescore: bool = False, ctc_weight: float | None = None,
                 device: str | torch.device = "cpu", method: str | None = None,
                 transducer_weight: float = 0.5, max_symbols_per_frame: int = 4) -> None:
        """model: an ASRModel (eval) on ``device``; chunk_size: encoder frames per chunk
        (>= 1; larger than the utterance: one chunk, full context); left_chunks: chunks of
        left context (-1: all); method: ctc_prefix_beam | transducer_greedy |
        transducer_modified_beam (None: the default of the module docstring); beam: of the
        search and the N-best rescored; rescore: rescoring at ``finish`` with the attention
        decoder, weight ``ctc_weight`` on CTC (None: 0.3 after the CTC search, 0.2 after a
        transducer search when the model has a CTC head) and ``transducer_weight`` on the
        transducer search's score; max_symbols_per_frame: of transducer greedy search."""
        check_streamable(model)
        method = method or default_streaming_method(model)
        check_streaming_method(model, method)
        if rescore and model.decoder is None:
            raise ValueError("rescore: the model has no attention decoder")
        if rescore and method == "transducer_greedy":
            raise ValueError("rescore: transducer_greedy keeps one hypothesis; rescore the "
                             "N-best of transducer_modified_beam")
        if chunk_size < 1:
            raise ValueError(f"chunk_size: must be >= 1 encoder frames (one larger than the "
                             f"utterance decodes it whole), got {chunk_size}")
        if left_chunks < -1:
            raise ValueError(f"left_chunks must be >= -1 (-1: all), got {left_chunks}")
        self.model, self.tokenizer, self.device = model, tokenizer, torch.device(device)
        self.extractor, self.cmvn = extractor, cmvn
        self.chunk_size, self.left_chunks = chunk_size, left_chunks
        self.method, self.beam, self.max_symbols = method, beam, max_symbols_per_frame
        self.rescore, self.ctc_weight = rescore, ctc_weight
        self.transducer_weight = transducer_weight
        layer = model.encoder.input_layer
        self.window, self.stride = input_window(layer, chunk_size)
        self.context = layer.right_context + 1  # input frames of one encoder frame
        self.timing = FrameTiming.of_encoder(model.encoder.output_lengths,
                                             extractor.frame_shift / 1000,
                                             extractor.frame_length / 1000)
        self.words = WordBuilder(tokenizer)
        self.reset()

    @classmethod
    def from_experiment(cls, exp, chunk_size: int = DEFAULT_CHUNK_SIZE,
                        **options) -> StreamingRecognizer:
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
        self.encoded: list[torch.Tensor] = []  # (1, Q, D) per chunk: rescoring, timing
        self.search = streaming_search(self.model, self.method, self.beam, self.device,
                                       self.max_symbols)
        self.chunks = 0                        # chunks run so far
        self.samples = 0                       # audio samples accepted
        self.finished = False
        self._final: Hypothesis | None = None
        self._partial = ""

    @torch.inference_mode()
    def accept(self, samples: torch.Tensor) -> str:
        """Feed (n,) mono audio at the model's rate (any n), float in [-1, 1] or integer PCM
        (scaled as asrkit.data.audio.float_samples does); -> the best text so far (unchanged
        until a chunk's frames are complete). Anything else (several channels, NaN/inf) is
        an AudioError, and the utterance is left as it was."""
        if self.finished:
            raise RuntimeError("accept after finish: call reset() for a new utterance")
        samples = _mono_piece(samples)
        self.samples += samples.numel()
        self.feats = torch.cat([self.feats, self.fbank.accept(samples)])
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
        """The best text of the search so far."""
        return self._partial

    @torch.inference_mode()
    def final_hypothesis(self) -> Hypothesis:
        """The search's best, or the rescored N-best's best with ``rescore`` (kept once
        the utterance is finished)."""
        if self._final is not None:
            return self._final
        nbest = self.search.nbest()
        if self.rescore and self.encoded and nbest[0]:
            nbest = self.search.rescore(self._encoder_output(), nbest, self.ctc_weight,
                                        self.transducer_weight)
        best = nbest[0][0] if nbest[0] else Hypothesis((), 0.0)
        if self.finished:
            self._final = best
        return best

    @torch.inference_mode()
    def transcript(self, source: str = "<stream>", duration: float | None = None) -> Transcript:
        """After ``finish``: the final hypothesis with word and token times in seconds
        (asrkit.inference.result; as offline transcription times a one-window recording)."""
        if not self.finished:
            raise RuntimeError("transcript before finish: the utterance is not complete")
        best = self.final_hypothesis()
        if duration is None:
            duration = self.samples / self.extractor.sample_rate
        stitcher = Stitcher(source, duration, self.words)
        if self.encoded:
            spans = self.search.token_spans(best, self._encoder_output(), self.words)
            start, end = self.timing.seconds(spans.start, spans.end)
            stitcher.add(0, (0.0, duration), True, True, WindowHypothesis(
                torch.tensor(best.tokens, dtype=torch.long), start, end, spans.confidence,
                spans.aligned, float(best.score)))
        return stitcher.result()

    def _encoder_output(self) -> torch.Tensor:
        return torch.cat(self.encoded, dim=1)  # (1, T', D)

    def _run_chunk(self, window: torch.Tensor) -> None:
        """window (W, bins) fbank frames -> the encoder chunk, searched."""
        chunk = window.to(self.device).unsqueeze(0)  # (1, W, bins)
        enc, self.att_cache, self.cnn_cache = self.model.encoder.forward_chunk(
            chunk, self.offset, self.att_cache, self.cnn_cache, self.left_chunks)  # (1, Q, D)
        self.offset += enc.size(1)
        self.chunks += 1
        self.encoded.append(enc)
        self.search.advance(enc)
        best = self.search.nbest()[0]
        self._partial = self.tokenizer.decode(best[0].tokens) if best else ""


def _mono_piece(samples) -> torch.Tensor:
    """A piece of streamed audio as (n,) float32, checked (StreamingRecognizer.accept)."""
    if isinstance(samples, torch.Tensor):
        samples = samples.detach().cpu().numpy()
    data = float_samples(np.asarray(samples), "streamed audio")
    if data.ndim != 1:
        raise AudioError(f"streamed audio: expected (n,) mono samples, got shape "
                         f"{tuple(data.shape)} (mix the channels down or pick one first)")
    return torch.from_numpy(to_mono(data[:, None], None, "streamed audio"))
