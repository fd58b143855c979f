"""asrkit.models.prefix_tree and ASRModel.score_nbest: the N-best of each utterance as a
prefix tree, scored in one decoder pass over its nodes, against naive references (prefix sets,
ancestor relations walked by hand, and each hypothesis scored alone with score_hypotheses)."""

from __future__ import annotations

import pytest
import torch

from asrkit.models.prefix_tree import PrefixTree, collate_trees, passes, tree_path_scores

NBEST = [[5, 6, 7], [5, 6, 8, 9], [5, 3], [], [4, 6, 7], [5, 6, 7, 7]]


def test_a_node_per_distinct_prefix_and_paths_spell_the_hypotheses():
    tree = PrefixTree.build(NBEST)
    prefixes = {tuple(hyp[:i]) for hyp in NBEST for i in range(len(hyp) + 1)}
    assert tree.num_nodes == len(prefixes) == 11
    for hyp, path in zip(NBEST, tree.paths, strict=True):
        assert path[0] == 0 and len(path) == len(hyp) + 1
        assert [tree.tokens[node] for node in path[1:]] == hyp
    # nodes are shared exactly when prefixes are equal
    node_of = {}
    for hyp, path in zip(NBEST, tree.paths, strict=True):
        for i, node in enumerate(path):
            assert node_of.setdefault(tuple(hyp[:i]), node) == node


def test_collated_trees_have_the_ancestor_mask_depths_and_targets():
    trees = [PrefixTree.build(NBEST), PrefixTree.build([[9]]), PrefixTree.build([[2, 2], [2]])]
    sos, eos = 10, 11
    batch = collate_trees(trees, sos, eos, self_attention="tree")
    nodes = max(t.num_nodes for t in trees)
    assert batch.tokens.shape == batch.depths.shape == (3, nodes)
    for b, tree in enumerate(trees):
        ancestors = {0: {0}}
        for path in tree.paths:  # naive: a node's ancestors are the nodes before it on a path
            for i, node in enumerate(path):
                ancestors[node] = set(path[: i + 1])
                assert batch.depths[b, node] == i
        for node in range(nodes):
            expected = ancestors.get(node, {node})  # a padding node sees itself only
            assert set(batch.attend[b, node].nonzero().flatten().tolist()) == expected
        assert batch.tokens[b, 0] == sos
        assert batch.tokens[b, tree.num_nodes:].eq(eos).all()
    row = 0
    for b, tree in enumerate(trees):
        for path in tree.paths:
            length = len(path)
            assert batch.valid[row].sum() == length
            assert batch.sources[row, :length].tolist() == [b * nodes + n for n in path]
            assert batch.targets[row, :length].tolist() == [tree.tokens[n] for n in path[1:]] + [eos]
            row += 1
    assert row == batch.sources.size(0)
    # node_rows: a place of each node on a path (its last); padding nodes: the tree's root
    width, first_path = batch.sources.size(1), 0
    flat_sources = batch.sources.flatten().tolist()
    for b, tree in enumerate(trees):
        for node in range(nodes):
            place = int(batch.node_rows[b * nodes + node])
            if node < tree.num_nodes:
                last = max(p * width + i for p, row in enumerate(batch.sources.tolist())
                           for i, n in enumerate(row) if n == b * nodes + node
                           and batch.valid[p, i])
                assert place == last
                assert flat_sources[place] == b * nodes + node
            else:
                assert place == first_path * width
        first_path += len(tree.paths)
    by_paths = collate_trees(trees, sos, eos, self_attention="paths")
    assert by_paths.attend is None  # attention along batch.sources instead
    for name in ("tokens", "depths", "sources", "targets", "valid", "node_rows"):
        assert torch.equal(getattr(by_paths, name), getattr(batch, name))


def test_the_cheaper_self_attention_route_is_chosen():
    sos, eos = 10, 11
    # 10 hypotheses that part at the first token: 41 nodes (41^2 pairs at once), 10 paths
    # of 5 (10 x 5^2 / 2 causal pairs) -> along the paths
    apart = PrefixTree.build([[t, 1, 1, 1] for t in range(10)])
    assert collate_trees([apart], sos, eos).attend is None
    # 10 hypotheses sharing all but the last token: 19 nodes (361 pairs), 10 paths of 10
    # (500 pairs) -> the tree at once
    shared = PrefixTree.build([[1] * 8 + [t] for t in range(10)])
    assert collate_trees([shared], sos, eos).attend is not None
    with pytest.raises(ValueError, match="self_attention must be one of"):
        collate_trees([shared], sos, eos, self_attention="dense")


def test_passes_keep_the_padded_size_within_the_budget():
    trees = [PrefixTree.build([[1] * n]) for n in (2, 3, 3, 5, 9, 20)]  # 3, 4, 4, 6, 10, 21 nodes
    groups = passes(range(6), trees, nodes_per_pass=12)
    assert groups == [[0, 1, 2], [3], [4], [5]]  # 3x4 = 12; 6+10 would pad to 2x10 = 20


@pytest.mark.parametrize("self_attention", [None, "tree", "paths"])
@pytest.mark.parametrize("nodes_per_pass", [1, 16, 100000])
def test_score_nbest_equals_each_hypothesis_scored_alone(tiny_model, nodes_per_pass,
                                                          self_attention):
    model, _ = tiny_model(vocab_size=12, input_layer="linear", mel_bins=8, sharpen=2.0)
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([9, 4, 7, 6])
    nbest = [[[3, 4, 5], [3, 4], [3, 4, 6, 7], [8]], [[]], [], [[5, 5, 5], [5, 5, 6], [5, 5, 5]]]
    with torch.no_grad():
        enc, enc_lens = model.encode(torch.randn(4, 9, 8, generator=gen), lengths)
        scores = model.score_nbest(enc, enc_lens, nbest, nodes_per_pass=nodes_per_pass,
                                   self_attention=self_attention)
        for b, hyps in enumerate(nbest):
            assert scores[b].shape == (len(hyps),) and scores[b].dtype == torch.float32
            for h, hyp in enumerate(hyps):  # alone: its own utterance, unpadded
                alone = model.score_hypotheses(enc[b: b + 1, : lengths[b]], lengths[b: b + 1],
                                               [hyp])
                assert scores[b][h].item() == pytest.approx(alone.item(), abs=1e-5)


def test_score_nbest_names_a_batch_mismatch(tiny_model):
    model, _ = tiny_model(input_layer="linear", mel_bins=8)
    enc, enc_lens = torch.zeros(2, 5, 32), torch.tensor([5, 5])
    with pytest.raises(ValueError, match="score_nbest: 1 N-best lists for a batch of 2"):
        model.score_nbest(enc, enc_lens, [[[3]]])


@pytest.mark.parametrize("self_attention", ["tree", "paths"])
def test_score_nbest_under_bf16_autocast_is_close_to_fp32(tiny_model, self_attention):
    """Both self-attention routes run under autocast (as a bf16 decode would) and give the
    fp32 scores to bf16 rounding."""
    model, _ = tiny_model(vocab_size=12, input_layer="linear", mel_bins=8, sharpen=2.0)
    gen = torch.Generator().manual_seed(1)
    nbest = [[[3, 4, 5], [3, 4, 6, 7], [8]], [[5, 5], [5, 6]]]
    with torch.no_grad():
        enc, enc_lens = model.encode(torch.randn(2, 9, 8, generator=gen), torch.tensor([9, 6]))
        fp32 = model.score_nbest(enc, enc_lens, nbest, self_attention=self_attention)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model.score_nbest(enc, enc_lens, nbest, self_attention=self_attention)
    for low, full in zip(bf16, fp32, strict=True):
        assert low.dtype == torch.float32
        assert torch.allclose(low, full, rtol=0.05, atol=0.1)


def test_a_decoder_layer_refuses_paths_with_a_cache(tiny_model):
    model, _ = tiny_model(input_layer="linear", mel_bins=8)
    batch = collate_trees([PrefixTree.build([[3, 4]])], 1, 2, self_attention="paths")
    layer = model.decoder.layers[0]
    x, enc = torch.zeros(1, 3, 32), torch.zeros(1, 4, 32)
    with pytest.raises(ValueError, match="takes paths without a cache or self_mask"):
        layer(x, None, enc, torch.ones(1, 1, 4, dtype=torch.bool), cache=x[:, :2], paths=batch)


@pytest.mark.parametrize("self_attention", ["tree", "paths"])
def test_a_tree_without_hypotheses_in_a_batch(tiny_model, self_attention):
    """A tree with no hypotheses (first or last in the batch) leaves the others' scores as
    they are alone."""
    decoder = tiny_model(vocab_size=12, input_layer="linear", mel_bins=8)[0].decoder
    enc = torch.randn(3, 9, decoder.layers[0].src_attn.linear_k.in_features,
                      generator=torch.Generator().manual_seed(0))
    enc_mask = torch.ones(3, 9, dtype=torch.bool)
    hyps = [[3, 4, 5], [3, 4], [6]]
    empty = PrefixTree.build([])
    full = PrefixTree.build(hyps)
    for trees, index in (([empty, full, empty], 1), ([full, empty, empty], 0)):
        batch = collate_trees(trees, 1, 2, self_attention=self_attention)
        assert int(batch.node_rows.max()) < batch.sources.numel()
        with torch.inference_mode():
            logits = decoder.forward_tree(batch, enc, enc_mask)
            scores = tree_path_scores(torch.log_softmax(logits.float(), -1), batch)
            alone_batch = collate_trees([full], 1, 2, self_attention=self_attention)
            alone = decoder.forward_tree(alone_batch, enc[index: index + 1],
                                         enc_mask[index: index + 1])
            expected = tree_path_scores(torch.log_softmax(alone.float(), -1), alone_batch)
        torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-5)


def test_passes_default_to_the_device_size(tiny_model, monkeypatch):
    """Without nodes_per_pass, a CPU batch is cut into passes of NODES_PER_PASS["cpu"]."""
    from asrkit.models import prefix_tree

    model, _ = tiny_model(vocab_size=12, input_layer="linear", mel_bins=8)
    sizes = []
    real = prefix_tree.passes
    monkeypatch.setattr(prefix_tree, "passes",
                        lambda order, trees, n: sizes.append(n) or real(order, trees, n))
    with torch.no_grad():
        enc, enc_lens = model.encode(torch.randn(2, 9, 8), torch.tensor([9, 7]))
        model.score_nbest(enc, enc_lens, [[[3, 4]], [[5]]])
        model.score_nbest(enc, enc_lens, [[[3, 4]], [[5]]], nodes_per_pass=7)
    assert sizes == [prefix_tree.NODES_PER_PASS["cpu"], 7] and sizes[0] == 512
