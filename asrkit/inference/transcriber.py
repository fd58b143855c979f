"""Transcribing recordings with a trained model: the Python API that ``asrkit transcribe`` is
a thin layer over (as ESPnet's Speech2Text or WeNet's recognize).

    from asrkit.inference import Transcriber
    transcriber = Transcriber.load("exp/conformer")              # its averaged model
    transcriber = Transcriber.load("exported/", threads=1)       # `asrkit export`: onnxruntime
    transcriber = Transcriber.load("exp/conformer", checkpoint="avg_3.pt",
                                   method="ctc_prefix_beam", search_overrides=["beam=5"])
    results = transcriber.transcribe(["a.wav", "b.flac", wave_44k], sample_rate=44100)
    for r in results:          # in input order: a Transcript, or a Failure naming the input
        print(r.text, r.words[0].start, r.words[0].confidence)
    for r in transcriber.stream(paths): ...      # the same, as each input is done

Load once, then transcribe any number of inputs: paths (any format soundfile reads, any
rate and channel count) or waveforms (numpy/torch, (samples,) or (samples, channels), at
``sample_rate``). Each input is mixed down (or ``channel`` picked), resampled to the
model's rate and cut into windows (asrkit.inference.windows); windows of all inputs are
batched (up to ``batch_size``, longest together), run through features, CMVN, the encoder
and CTC head (asrkit.decoding.decode_set.encode_batch) and the search method
(asrkit.decoding.search: the same methods and conf/search options as ``asrkit decode``;
default ``transducer_modified_beam`` when the model has a transducer, else
``attention_rescoring`` when it has an attention decoder, else ``ctc_prefix_beam``). The
best hypothesis of each window gets token and word times and the windows of a recording are
stitched (asrkit.inference.stitching).

Token times come from the transducer's emission frames or from CTC forced alignment,
chosen by the method (asrkit.inference.token_times).

Model families (asrkit.inference.exported_dir.model_family): ``ctc``, ``ctc_attention``,
``transducer`` and the hybrids ``transducer_ctc``, ``transducer_ctc_attention``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from asrkit.config import ConfigError, one_line
from asrkit.data.cmvn import GlobalCMVN
from asrkit.data.features import FbankExtractor
from asrkit.decoding.decode_set import encode_batch
from asrkit.decoding.experiment import load_experiment
from asrkit.decoding.plan import search_methods
from asrkit.decoding.precision import FP32, DecodePrecision, check_precision
from asrkit.decoding.search import SearchMethod
from asrkit.inference.alignment import FrameTiming
from asrkit.inference.exported_dir import ExportedDir, model_family
from asrkit.inference.exported_model import ExportedModel
from asrkit.inference.result import Failure, Transcript
from asrkit.inference.segments import AudioInput, InputFailure, Segment, segments, source_name
from asrkit.inference.stitching import Stitcher, WindowHypothesis
from asrkit.inference.token_times import TOKEN_TIMES, token_time_source
from asrkit.inference.windows import DEFAULT_WINDOWS, WindowSettings
from asrkit.inference.words import WordBuilder
from asrkit.text.base import Tokenizer
from asrkit.text.registry import fingerprint, load_tokenizer


class Transcriber:
    def __init__(self, model, tokenizer: Tokenizer, extractor: FbankExtractor,
                 cmvn: GlobalCMVN | None, timing: FrameTiming, method: SearchMethod,
                 method_name: str, family: str, device: str | torch.device = "cpu",
                 windows: WindowSettings = DEFAULT_WINDOWS, batch_size: int = 8,
                 channel: int | None = None, precision: DecodePrecision = FP32) -> None:
        """model: an ASRModel or an ExportedModel (their decoding interface); family: its
        model family (informative); precision: the autocast of the encoder and search
        (asrkit.decoding.precision); the rest as ``load`` documents."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.times = token_time_source(method, method_name, model)
        self.model, self.tokenizer, self.extractor, self.cmvn = model, tokenizer, extractor, cmvn
        self.timing, self.method, self.method_name = timing, method, method_name
        self.family, self.device = family, torch.device(device)
        self.windows, self.batch_size, self.channel = windows, batch_size, channel
        self.precision = precision
        self.words = WordBuilder(tokenizer)

    @classmethod
    def load(cls, model_dir: str | Path, checkpoint: str | None = None,
             method: str | None = None, search_overrides: Sequence[str] = (),
             device: str = "cpu", trusted_modules: Sequence[str] = (),
             threads: int | None = None, precision: str = "fp32",
             **options) -> Transcriber:
        """From an experiment directory (``checkpoint``: None for its averaged model) or an
        exported directory (asrkit.inference.exported_dir; ``threads``: onnxruntime's).
        method: a search method name (conf/search/<name>.yaml); search_overrides: decode
        config overrides (``beam=5``, ``search.attention_rescoring.ctc_weight=0.5``);
        trusted_modules: modules of your own the stored config may name; precision: fp32,
        bf16, fp16 or auto (asrkit.decoding.precision; experiments only); options:
        ``windows``, ``batch_size``, ``channel``."""
        check_precision(precision)
        path = Path(model_dir)
        if not path.is_dir():
            raise FileNotFoundError(f"MODEL: {path} is not a directory (an experiment or an "
                                    f"exported model)")
        if ExportedDir.holds_export(path):
            if checkpoint is not None:
                raise ConfigError(f"checkpoint: {path} is an exported model (one model, no "
                                  f"checkpoints)")
            if torch.device(device).type != "cpu":
                raise ConfigError(f"device: exported models run on the CPU ({path})")
            if precision != "fp32":
                raise ConfigError(f"precision: {precision} is for experiments; {path} is an "
                                  f"exported model, which runs as it was exported (fp32)")
            model, tokenizer, extractor, cmvn, timing, family = _exported_parts(
                path, threads, trusted_modules)
        else:
            exp = load_experiment(path, checkpoint, device, trusted_modules)
            model, tokenizer, extractor, cmvn = exp.model, exp.tokenizer, exp.extractor, exp.cmvn
            timing = FrameTiming.of_encoder(model.encoder.output_lengths,
                                            extractor.frame_shift / 1000,
                                            extractor.frame_length / 1000)
            family = model_family(model)
        name = method or default_method(model)
        search = search_methods([name], list(search_overrides), model)[name]
        return cls(model, tokenizer, extractor, cmvn, timing, search, name, family, device,
                   precision=DecodePrecision.resolve(precision, device), **options)

    # ---- transcribing -------------------------------------------------------------------
    def transcribe(self, inputs: Sequence[AudioInput],
                   sample_rate: int | None = None) -> list[Transcript | Failure]:
        """Every input's Transcript (or Failure), in input order; ``sample_rate``: the rate
        of inputs given as arrays (default the model's)."""
        return list(self.stream(inputs, sample_rate))

    def stream(self, inputs: Sequence[AudioInput],
               sample_rate: int | None = None) -> Iterator[Transcript | Failure]:
        """As ``transcribe``, yielding each input's result as soon as it and every input
        before it are done."""
        stitchers: dict[int, Stitcher] = {}
        done: dict[int, Transcript | Failure] = {}
        open_windows: dict[int, int] = {}    # input -> windows read but not yet decoded
        finished_reading: set[int] = set()
        buffer: list[Segment] = []
        next_out = 0
        rate = self.extractor.sample_rate
        stream = segments(inputs, rate, self.windows, self.channel, sample_rate,
                          self.extractor.window_samples, round(self.timing.period * rate))
        for item in stream:
            if isinstance(item, InputFailure):
                done[item.index] = item.failure
                finished_reading.add(item.index)
            else:
                if item.index not in stitchers:
                    stitchers[item.index] = Stitcher(source_name(inputs[item.index], item.index),
                                                     item.duration, self.words)
                open_windows[item.index] = open_windows.get(item.index, 0) + 1
                if item.last:
                    finished_reading.add(item.index)
                buffer.append(item)
            if len(buffer) >= 4 * self.batch_size:  # a look-ahead to batch similar lengths
                self._decode_buffer(buffer, inputs, stitchers, done, open_windows)
                buffer = []
            while next_out in done or (next_out in finished_reading
                                       and not open_windows.get(next_out)):
                yield _result(next_out, stitchers, done)
                next_out += 1
        self._decode_buffer(buffer, inputs, stitchers, done, open_windows)
        while next_out < len(inputs):
            yield _result(next_out, stitchers, done)
            next_out += 1

    def _decode_buffer(self, buffer: list[Segment], inputs: Sequence[AudioInput],
                       stitchers: dict, done: dict, open_windows: dict) -> None:
        order = sorted(buffer, key=lambda s: -s.wave.numel())
        for start in range(0, len(order), self.batch_size):
            batch = order[start: start + self.batch_size]
            for segment, outcome in zip(batch, self.decode_windows(batch)):
                open_windows[segment.index] -= 1
                if segment.index in done or segment.index not in stitchers:
                    continue  # the input failed meanwhile (and may have been handed out)
                if isinstance(outcome, str):
                    name = source_name(inputs[segment.index], segment.index)
                    done[segment.index] = Failure(name, f"{name}: {outcome}")
                else:
                    stitchers[segment.index].add(segment.number, segment.keep,
                                                 segment.number == 0, segment.last, outcome)

    @torch.inference_mode()
    def decode_windows(self, batch: Sequence[Segment]) -> list[WindowHypothesis | str]:
        """Decode a batch of windows -> per window its best hypothesis with token times
        (seconds in its recording), or why it could not be decoded."""
        feats = [self.extractor(segment.wave) for segment in batch]  # (frames, bins) each
        if self.cmvn is not None:
            feats = [self.cmvn(f) for f in feats]
        lens = torch.tensor([f.size(0) for f in feats])
        padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)  # (B, T, bins)
        needs_ctc = self.method.needs_ctc or self.times == "ctc"
        with self.precision.autocast():
            enc, enc_lens, ctc, keep = encode_batch(self.model, padded.to(self.device),
                                                    lens.to(self.device), needs_ctc)
            best, all_spans = TOKEN_TIMES[self.times](self.model, self.method, enc, enc_lens,
                                                      ctc, self.words) if enc.size(0) else ([], [])
        outcomes: list[WindowHypothesis | str] = []
        row = 0
        for segment, kept in zip(batch, keep.tolist()):
            if not kept:
                outcomes.append("too short for the encoder (no encoder frames)")
                continue
            best_row, spans = best[row], all_spans[row]
            start, end = self.timing.seconds(spans.start, spans.end)
            outcomes.append(WindowHypothesis(
                torch.tensor(best_row.tokens, dtype=torch.long), start + segment.offset,
                end + segment.offset, spans.confidence, spans.aligned, float(best_row.score)))
            row += 1
        return outcomes


def default_method(model) -> str:
    """``transducer_modified_beam`` for a model with a transducer (alone or in a hybrid, where
    CTC and the decoder are usually the auxiliary branches), else ``attention_rescoring``
    with an attention decoder, else ``ctc_prefix_beam``."""
    if getattr(model, "transducer", None) is not None:
        return "transducer_modified_beam"
    return "attention_rescoring" if model.decoder is not None else "ctc_prefix_beam"


def _result(index: int, stitchers: dict, done: dict) -> Transcript | Failure:
    stitcher = stitchers.pop(index, None)
    return done.pop(index) if index in done else stitcher.result()


def _exported_parts(path: Path, threads: int | None, trusted_modules: Sequence[str]):
    exported = ExportedDir(path)
    model = ExportedModel.load(path, threads, trusted_modules)
    info = model.info
    tokenizer = load_tokenizer(exported.tokenizer_dir)
    recorded = info.raw.get("tokenizer_fingerprint")
    if tokenizer.vocab_size != info.vocab_size or (recorded and recorded != fingerprint(tokenizer)):
        raise ValueError(f"{exported.tokenizer_dir}: not the tokenizer the model in {path} was "
                         f"exported with; its ids would decode to the wrong units")
    cmvn = GlobalCMVN.load(exported.cmvn_file) if info.raw.get("cmvn") else None
    try:
        extractor = FbankExtractor(**info.features)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{exported.info_file}: malformed features "
                         f"({one_line(e)})") from None
    timing = FrameTiming(info.frame_period, info.first_frame_centre)
    return model, tokenizer, extractor, cmvn, timing, info.family
