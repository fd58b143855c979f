import pytest

from asrkit.scoring.normalize import TextNormalizer


def test_default_keeps_text_but_collapses_whitespace():
    assert TextNormalizer()("  Hello,   World ") == "Hello, World"
    assert TextNormalizer().describe() == "none"


def test_case_and_punctuation():
    norm = TextNormalizer(case="lower", punctuation="remove")
    assert norm("Don't STOP—well-known, \u201cquoted\u201d; end.") == "dont stop well known quoted end"
    assert TextNormalizer(case="upper")("ab c") == "AB C"
    assert norm.describe() == "case lower, punctuation removed"
    assert TextNormalizer(punctuation="remove")("北京，你好。") == "北京 你好"


def test_options_from_config_and_command_line():
    assert TextNormalizer.from_dict({"case": "lower"}) == TextNormalizer(case="lower")
    assert TextNormalizer.from_words(["lower,nopunct"]) == TextNormalizer("lower", "remove")
    assert TextNormalizer.from_words(["none"]) == TextNormalizer()
    with pytest.raises(ValueError, match="normalize.casing: unknown option"):
        TextNormalizer.from_dict({"casing": "lower"})
    with pytest.raises(ValueError, match="normalize.case: 'title'"):
        TextNormalizer(case="title")
    with pytest.raises(ValueError, match="--normalize: unknown option 'lowercase'"):
        TextNormalizer.from_words(["lowercase"])
