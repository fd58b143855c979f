"""The hypotheses of an utterance as a prefix tree, for scoring them all with a causal decoder
in one teacher-forced pass over the tree's nodes.

A causal decoder's state at position i depends on the tokens up to i only, so hypotheses that
share a prefix share its states: each distinct prefix is one node (the root is sos), a node
attends to its ancestors and itself (the tree's causal mask), and sits at the position of its
depth. The decoder's output at a node is then exactly the one at that position of every
hypothesis that passes through it, and a hypothesis's log-likelihood is the sum, along its
path, of the log-probability each node gives the next token (eos after its last node). This
is tree attention as in speculative decoding's token trees (Miao et al. 2024, "SpecInfer").
An N-best list from the CTC prefix beam search shares much of its prefixes: 2-7x fewer
nodes than hypothesis tokens at beam 10 (``benchmarks/decode.py --search-only`` prints
both). Building the tree walks each hypothesis once (a dict look-up per token); everything
else is tensor ops.

    scores = score_trees(decoder, enc, enc_lens, nbest, sos_id, eos_id)  # per utterance
    # inside: trees = [PrefixTree.build(hyps) for hyps in nbest]; per pass of a few trees
    # collate_trees -> decoder.forward_tree -> tree_path_scores
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from asrkit.models.mask import padding_mask


@dataclass(frozen=True)
class PrefixTree:
    """One utterance's hypotheses: node 0 is the root (sos); ``tokens[n]`` is node n's token
    (None for the root); ``paths[h]`` the nodes of hypothesis h from the root to its last
    token (its length is the hypothesis's + 1)."""

    tokens: tuple[int | None, ...]
    paths: tuple[tuple[int, ...], ...]

    @classmethod
    def build(cls, hyps: Sequence[Sequence[int]]) -> PrefixTree:
        tokens: list[int | None] = [None]
        children: dict[tuple[int, int], int] = {}
        paths = []
        for hyp in hyps:
            node, path = 0, [0]
            for token in hyp:
                child = children.get((node, token))
                if child is None:
                    child = children[(node, token)] = len(tokens)
                    tokens.append(int(token))
                node = child
                path.append(node)
            paths.append(tuple(path))
        return cls(tuple(tokens), tuple(paths))

    @property
    def num_nodes(self) -> int:
        return len(self.tokens)


@dataclass(frozen=True)
class TreeBatch:
    """Trees padded to N nodes each. tokens (B, N) (root sos, padding eos), depths (B, N);
    per hypothesis of all trees in order, H in all: sources (H, L+1) flat node indices
    (tree * N + node) of its path, targets (H, L+1) the token each predicts (its next token,
    eos after the last), valid (H, L+1) bool.

    Self-attention over the nodes takes one of two routes, the one with fewer query-key
    pairs: ``attend`` (B, N, N) bool, each node's ancestors and itself (padding nodes only
    themselves), over all of a tree's nodes at once; or, when ``attend`` is None, along each
    hypothesis's path with a causal mask (``sources``), each node's output taken from a path
    through it. Trees whose hypotheses diverge early (few shared nodes, N close to the
    hypotheses' tokens) are cheaper path by path. ``node_rows`` (B*N,) gives, for each flat
    node, the flat index (path * (L+1) + position) of the last place it holds on a path (a
    padding node: its tree's root on the tree's first path; the nodes of a tree without
    hypotheses: a place of another tree); both routes are built from it."""

    tokens: torch.Tensor
    depths: torch.Tensor
    attend: torch.Tensor | None
    sources: torch.Tensor
    targets: torch.Tensor
    valid: torch.Tensor
    node_rows: torch.Tensor


SELF_ATTENTION_ROUTES = ("tree", "paths")


def collate_trees(trees: Sequence[PrefixTree], sos_id: int, eos_id: int,
                  device: torch.device | str = "cpu",
                  self_attention: str | None = None) -> TreeBatch:
    """Pad and stack ``trees`` (at least one hypothesis in all) into a TreeBatch;
    ``self_attention``: "tree" or "paths" (see TreeBatch), None: the route with fewer
    query-key pairs (B N^2 against P (L+1)^2 / 2 for P paths padded to L+1, the causal half)."""
    batch, nodes = len(trees), max(tree.num_nodes for tree in trees)
    flat_tokens = [eos_id] * (batch * nodes)
    path_rows, target_rows = [], []
    for b, tree in enumerate(trees):
        base = b * nodes
        flat_tokens[base] = sos_id
        flat_tokens[base + 1: base + tree.num_nodes] = tree.tokens[1:]
        for path in tree.paths:
            path_rows.append([base + node for node in path])
            target_rows.append([tree.tokens[node] for node in path[1:]] + [eos_id])
    width = max(len(row) for row in path_rows)
    sources = torch.tensor([row + [-1] * (width - len(row)) for row in path_rows],
                           device=device)  # (H, L+1)
    targets = torch.tensor([row + [eos_id] * (width - len(row)) for row in target_rows],
                           device=device)
    valid = sources >= 0
    sources = sources.clamp(min=0)
    tokens = torch.tensor(flat_tokens, device=device).view(batch, nodes)
    # each node's last place on a path (flat index path * width + position), by one
    # scatter; a node on no path (padding) takes its tree's root on the tree's first path
    places = torch.arange(sources.numel(), device=device).view_as(sources)
    node_rows = torch.full((batch * nodes,), -1, dtype=torch.long, device=device).scatter_reduce_(
        0, sources.flatten(), places.masked_fill(~valid, -1).flatten(), "amax")
    first_paths = torch.tensor([0] + [len(tree.paths) for tree in trees[:-1]],
                               device=device).cumsum(0).clamp(max=len(path_rows) - 1)  # (B,)
    on_path = node_rows >= 0
    node_rows = torch.where(on_path, node_rows,
                            (first_paths * width).repeat_interleave(nodes))  # (B*N,)
    depths = (node_rows % width).view(batch, nodes)  # a node's position on its paths
    if self_attention is None:
        path_pairs = len(path_rows) * width * width // 2  # padded to the longest path
        self_attention = "paths" if path_pairs < batch * nodes * nodes else "tree"
    if self_attention not in SELF_ATTENTION_ROUTES:
        raise ValueError(f"self_attention must be one of {SELF_ATTENTION_ROUTES}, "
                         f"got {self_attention!r}")
    if self_attention == "paths":
        return TreeBatch(tokens, depths, None, sources, targets, valid, node_rows)
    # a node's ancestors and itself: the nodes before it on the path it was placed on
    path_nodes = sources.index_select(0, node_rows // width) % nodes  # (B*N, width)
    before = (torch.arange(width, device=device) <= depths.view(-1, 1)) & on_path.view(-1, 1)
    attend = torch.zeros(batch * nodes, nodes, dtype=torch.int32, device=device).scatter_add_(
        1, path_nodes, before.int()) > 0  # (B*N, N)
    attend |= torch.eye(nodes, dtype=torch.bool, device=device).repeat(batch, 1)  # padding
    return TreeBatch(tokens, depths, attend.view(batch, nodes, nodes), sources, targets,
                     valid, node_rows)


def tree_path_scores(log_probs: torch.Tensor, batch: TreeBatch) -> torch.Tensor:
    """log_probs (B, N, V) of the decoder at every node -> (H,) fp32: each hypothesis's
    log-likelihood with eos, the sum along its path."""
    flat = log_probs.float().flatten(0, 1)  # (B*N, V)
    picked = flat[batch.sources, batch.targets]  # (H, L+1)
    return (picked * batch.valid).sum(-1)


def passes(order: Sequence[int], trees: Sequence[PrefixTree], nodes_per_pass: int
           ) -> list[list[int]]:
    """``order`` (tree indices, best sorted by size) cut into consecutive groups whose padded
    size (trees x the largest tree's nodes) stays within ``nodes_per_pass`` (a tree larger
    than that goes alone)."""
    groups: list[list[int]] = []
    group: list[int] = []
    largest = 0
    for index in order:
        size = max(largest, trees[index].num_nodes)
        if group and (len(group) + 1) * size > nodes_per_pass:
            groups.append(group)
            group, size = [], trees[index].num_nodes
        group.append(index)
        largest = size
    if group:
        groups.append(group)
    return groups


# padded nodes per decoder pass when the caller names none: on a CPU (one thread) 512 was
# 3-9 % faster than 1024 for the synth and AISHELL decoders on benchmarks/decode.py's lists
# (smaller attention blocks, less padding; 384 no better); other devices keep larger passes
NODES_PER_PASS = {"cpu": 512}


def score_trees(decoder: nn.Module, enc: torch.Tensor, enc_lens: torch.Tensor,
                nbest: Sequence[Sequence[Sequence[int]]], sos_id: int, eos_id: int,
                nodes_per_pass: int | None = None,
                self_attention: str | None = None) -> list[torch.Tensor]:
    """log P(y, eos | x) of each utterance's hypotheses under ``decoder`` (its
    ``forward_tree``): enc (B, T', D), enc_lens (B,), nbest: B lists of token-id lists -> B
    tensors (hypotheses,) fp32. Utterances go through smallest tree first (then shortest),
    in passes of about ``nodes_per_pass`` padded nodes (None: ``NODES_PER_PASS`` for the
    device, else 1024), each trimmed to its longest utterance's frames; ``self_attention``
    as in collate_trees. Grouping by tree size pads
    fewer nodes than grouping by length (on benchmarks/decode.py's lists 8,662 against 9,949
    padded nodes for 8,230, and 4,062 against 5,007 for 3,614), and the nodes' matrix
    products are most of the time."""
    trees = [PrefixTree.build(hyps) for hyps in nbest]
    nodes_per_pass = nodes_per_pass or NODES_PER_PASS.get(enc.device.type, 1024)
    scores = [torch.zeros(0, device=enc.device) for _ in trees]
    frames = enc_lens.tolist()
    order = sorted((b for b, tree in enumerate(trees) if tree.paths),
                   key=lambda b: (trees[b].num_nodes, frames[b]))
    for group in passes(order, trees, nodes_per_pass):
        index = torch.tensor(group, device=enc.device)
        width = max(frames[b] for b in group)
        batch = collate_trees([trees[b] for b in group], sos_id, eos_id, enc.device,
                              self_attention)
        logits = decoder.forward_tree(batch, enc[:, :width].index_select(0, index),
                                      padding_mask(enc_lens.index_select(0, index), width))
        flat = tree_path_scores(F.log_softmax(logits.float(), dim=-1), batch)  # (H,)
        for b, part in zip(group, flat.split([len(trees[b].paths) for b in group]),
                           strict=True):
            scores[b] = part
    return scores
