"""Scoring: WER/CER with sclite's alignments, text normalisation, paired bootstrap
significance, and the comparison of decode results across experiment directories.

Modules: wer (error rates, reports), align (sclite's alignment), normalize, kaldi_text
(``<id> <text>`` files: a decode's hyp.txt and ref.txt), decode_dir (a decode's result
directory), results_md (an experiment's results.md), bootstrap, compare (the table across
experiments), compare_format (a comparison as Markdown, CSV or a bar plot), experiment_info
(an experiment's size, epochs and training hours)."""
