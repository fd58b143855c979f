"""Row operations on a prediction network's state (a tuple of (N, ...) tensors), shared by
the eager TransducerHead and the exported transducer (asrkit.inference.exported_transducer),
so that every search runs the same way on either.

    state = select_state(state, torch.tensor([2, 0]))              # rows 2 and 0, in order
    pred, state = advance_rows(head.predict, tokens, state, pred, emitted)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

State = tuple[torch.Tensor, ...]


def select_state(state: State, index: torch.Tensor) -> State:
    """The rows ``index`` (M,) of a state, in that order."""
    return tuple(s.index_select(0, index) for s in state)


def advance_rows(predict: Callable[[torch.Tensor, State], tuple[torch.Tensor, State]],
                 tokens: torch.Tensor, state: State, pred: torch.Tensor,
                 emitted: torch.Tensor) -> tuple[torch.Tensor, State]:
    """``predict`` for the rows where ``emitted`` (N,) is True only (a row that took a blank
    keeps its prediction output and state); pred (N, J) the current projected outputs."""
    rows = emitted.nonzero().squeeze(1)
    if rows.numel() == 0:
        return pred, state
    new_pred, new_state = predict(tokens[rows], select_state(state, rows))
    pred = pred.index_copy(0, rows, new_pred.to(pred.dtype))
    return pred, tuple(s.index_copy(0, rows, n.to(s.dtype)) for s, n in zip(state, new_state))
