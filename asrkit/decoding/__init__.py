"""Search algorithms over a trained ASRModel, one search family per file:

- ``ctc_greedy``: per-frame argmax, repeats collapsed, blanks removed;
- ``ctc_prefix_beam``: CTC prefix beam search (N-best labellings with summed path scores);
- ``attention_beam``: beam search over the attention decoder with cached steps;
- ``attention_rescoring``: CTC N-best rescored by the attention decoder (WeNet's method);
- ``joint_ctc_attention``: one-pass joint CTC/attention beam search (Watanabe et al. 2017),
  with the vectorised CTC prefix scorer of ``ctc_prefix_score``;
- ``transducer_greedy``, ``transducer_modified_beam``, ``transducer_beam``: the transducer
  searches (the beam searches' batched hypotheses: ``transducer_hypotheses``), and
  ``transducer_search`` the SearchMethod classes of all four transducer methods (greedy,
  modified beam, beam, rescoring).

A ``SearchMethod`` dataclass (``search``) is what a config names (conf/search/<name>.yaml):
the CTC and attention files hold their own, ``transducer_search`` the transducer ones;
``ctc_prefix_score`` and the transducer algorithm files hold none. ``plan`` builds them from
the decode config and ``decode_set`` runs them over a test set.
"""
