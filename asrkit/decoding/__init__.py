"""Search algorithms over a trained ASRModel, one family per file:

- ``ctc_greedy``: per-frame argmax, repeats collapsed, blanks removed;
- ``ctc_prefix_beam``: CTC prefix beam search (N-best labellings with summed path scores);
- ``attention_beam``: beam search over the attention decoder with cached steps;
- ``attention_rescoring``: CTC N-best rescored by the attention decoder (WeNet);
- ``joint_ctc_attention``: one-pass joint CTC/attention beam search (Watanabe et al. 2017),
  with the vectorised CTC prefix scorer of ``ctc_prefix_score``.

``methods`` names them for configs; ``decode_set`` runs them over a test set.
"""
