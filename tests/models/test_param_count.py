from asrkit.models.asr_model import ASRModel
from asrkit.models.decoders.transformer import TransformerDecoder
from asrkit.models.encoders.transformer import TransformerEncoder
from asrkit.models.param_count import count_parameters, format_parameter_table


def model(tie_weights: bool) -> ASRModel:
    encoder = TransformerEncoder(input_dim=20, d_model=8, num_heads=2, ffn_dim=16, num_layers=1)
    decoder = TransformerDecoder(10, 8, d_model=8, num_heads=2, ffn_dim=16, num_layers=1,
                                 tie_weights=tie_weights)
    return ASRModel(encoder, decoder, 10)


def test_parts_add_up_and_tied_weights_count_once():
    for tie in (False, True):
        m = model(tie)
        counts = count_parameters(m)
        unique = {id(p): p.numel() for p in m.parameters()}
        assert counts["total"] == sum(unique.values())
        assert counts["total"] == counts["encoder"] + counts["decoder"] + counts["ctc"]
        assert counts["ctc"] == 8 * 10 + 10
    untied, tied = count_parameters(model(False)), count_parameters(model(True))
    assert untied["decoder"] - tied["decoder"] == 8 * 10  # the shared (vocab, d) matrix


def test_table_lists_parts_and_total():
    table = format_parameter_table(count_parameters(model(False)))
    for name in ("encoder", "  layers", "decoder", "ctc", "total"):
        assert any(line.startswith(name) for line in table.splitlines())
