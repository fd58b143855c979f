"""Attention decoders over encoder output (see ``transformer.TransformerDecoder``)."""
