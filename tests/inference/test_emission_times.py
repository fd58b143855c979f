"""Token and word times from a transducer's emission frames: a scripted head whose joint
emits known labels at known frames with known posteriors, so that every start, end and
confidence the transcriber reports is known exactly; the span rule on its own; and the
teacher-forced prediction outputs behind the confidences equal stepping the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asrkit.data.features import FbankExtractor
from asrkit.decoding.plan import search_methods
from asrkit.inference.alignment import FrameTiming
from asrkit.inference.emission_times import emission_spans, prefix_predictions
from asrkit.inference.transcriber import Transcriber
from asrkit.inference.words import WordBuilder
from asrkit.models.transducer.build import transducer_head
from asrkit.text.registry import train_tokenizer

TOKENIZER = train_tokenizer(["ab cd", "ba dc"], "char", None)  # a b c d ▁ = 3 4 5 6 7
LABELS = [3, 4, 7, 5, 6, 7, 3]              # "ab cd a"
FRAMES = [5, 9, 10, 30, 33, 40, 52]         # each label's emission frame (one per frame)
POSTERIORS = [0.9, 0.7, 0.95, 0.6, 0.8, 0.99, 0.75]
TIMING = FrameTiming(period=0.04, first_centre=0.0425)


class ScriptedHead:
    """A transducer head with the decoding interface whose joint gives label LABELS[u]
    probability POSTERIORS[u] on frame FRAMES[u] after u labels, and blank 0.99 elsewhere.
    Encoder frames carry their own number; the prediction output is the label count."""

    blank_id, vocab_size = 0, TOKENIZER.vocab_size

    def __init__(self, frames: int = 100) -> None:
        table = torch.full((frames, len(LABELS) + 1, self.vocab_size), 0.01 / (self.vocab_size - 1))
        table[:, :, 0] = 0.99
        for u, (label, frame, p) in enumerate(zip(LABELS, FRAMES, POSTERIORS)):
            table[frame, u] = (1 - p) / (self.vocab_size - 1)
            table[frame, u, label] = p
        self.log_table = table.log()  # (T', U + 1, V)

    def project_encoder(self, enc):
        return enc  # (..., 1): the frame number

    def initial_state(self, batch, device):
        return (torch.full((batch,), -1, dtype=torch.long),)

    def predict(self, tokens, state):
        count = state[0] + 1
        return count.float()[:, None], (count,)

    def advance(self, tokens, state, pred, emitted):
        new_pred, new_state = self.predict(tokens, state)
        return (torch.where(emitted[:, None], new_pred, pred),
                (torch.where(emitted, new_state[0], state[0]),))

    def joint(self, enc_proj, pred):
        frame = enc_proj[..., 0].long().clamp(max=self.log_table.size(0) - 1)
        count = pred[..., 0].long().clamp(max=len(LABELS))
        return self.log_table[frame, count]

    @staticmethod
    def select_state(state, index):
        return tuple(s.index_select(0, index) for s in state)


class ScriptedModel:
    """encode: four fbank frames per encoder frame, each frame its own number."""

    ctc = decoder = None
    blank_id, vocab_size = 0, TOKENIZER.vocab_size

    def __init__(self) -> None:
        self.transducer = ScriptedHead()

    def encode(self, feats, feat_lens):
        frames = feats.size(1) // 4
        enc = torch.arange(frames, dtype=torch.float32)[None, :, None].expand(feats.size(0), -1, 1)
        return enc, feat_lens // 4


@pytest.mark.parametrize("method", ["transducer_greedy", "transducer_modified_beam",
                                    "transducer_beam"])
def test_scripted_emissions_give_exact_times(method):
    model = ScriptedModel()
    search = search_methods([method], ["beam=3"], model)[method]
    transcriber = Transcriber(model, TOKENIZER, FbankExtractor(num_mel_bins=40), None, TIMING,
                              search, method, "transducer")
    wave = torch.randn(16000 * 3, generator=torch.Generator().manual_seed(0)) * 0.1
    result, = transcriber.transcribe([wave])
    assert result.text == "ab cd a"
    starts = TIMING.first_centre + np.array(FRAMES) * TIMING.period - TIMING.period / 2
    # a word's tokens tile it; a word's last token and a separator: their emission frame
    ends = np.array([starts[1], *(starts[i] + TIMING.period for i in (1, 2)), starts[4],
                     *(starts[i] + TIMING.period for i in (4, 5, 6))])
    assert [t.id for t in result.tokens] == [3, 4, 5, 6, 3]  # separators belong to no word
    kept = [0, 1, 3, 4, 6]
    assert [t.start for t in result.tokens] == pytest.approx(starts[kept].tolist())
    assert [t.end for t in result.tokens] == pytest.approx(ends[kept].tolist())
    assert [t.confidence for t in result.tokens] == pytest.approx(
        [POSTERIORS[i] for i in kept], abs=1e-6)
    assert [(w.text, w.start, w.end) for w in result.words] == [
        ("ab", pytest.approx(starts[0]), pytest.approx(starts[1] + TIMING.period)),
        ("cd", pytest.approx(starts[3]), pytest.approx(starts[4] + TIMING.period)),
        ("a", pytest.approx(starts[6]), pytest.approx(starts[6] + TIMING.period))]
    assert result.words[0].confidence == pytest.approx((0.9 + 0.7) / 2, abs=1e-6)


def test_spans_of_labels_on_one_frame():
    """Greedy and standard beam search may emit several labels on a frame: they share it."""
    ids = torch.tensor(TOKENIZER.encode("ab cd"))  # a b ▁ c d
    joins = WordBuilder(TOKENIZER).joins_next(ids)
    assert joins.tolist() == [True, False, False, True, False]
    spans = emission_spans(torch.tensor([4, 4, 4, 7, 7]), joins, torch.ones(5))
    assert spans.start.tolist() == [4, 4, 4, 7, 7]
    assert spans.end.tolist() == [5, 5, 5, 8, 8]
    empty = emission_spans(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.bool),
                           torch.zeros(0))
    assert empty.start.numel() == empty.end.numel() == 0


class SteppedOnly:
    """A head offering only the step interface (as an exported one)."""

    def __init__(self, head) -> None:
        self.head, self.blank_id = head, head.blank_id

    def initial_state(self, batch, device):
        return self.head.initial_state(batch, device)

    def predict(self, tokens, state):
        return self.head.predict(tokens, state)


@pytest.mark.parametrize("options", [{"prediction": "lstm", "prediction_layers": 2},
                                     {"prediction": "stateless", "context_size": 3}])
def test_teacher_forced_predictions_equal_stepping(options):
    torch.manual_seed(0)
    head = transducer_head(vocab_size=11, encoder_dim=8, prediction_dim=16, joint_dim=12,
                           **options).eval()
    tokens = torch.randint(1, 11, (3, 9))
    with torch.no_grad():
        whole = prefix_predictions(head, tokens)
        stepped = prefix_predictions(SteppedOnly(head), tokens)
    assert whole.shape == (3, 9, 12)
    assert (whole - stepped).abs().max() < 1e-5
