"""Scoring: WER/CER with alignments (jiwer), text normalisation, paired bootstrap
significance, and the comparison of decode results across experiment directories."""
