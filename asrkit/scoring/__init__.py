"""Scoring: WER/CER with sclite's alignments, text normalisation, paired bootstrap
significance, and the comparison of decode results across experiment directories."""
