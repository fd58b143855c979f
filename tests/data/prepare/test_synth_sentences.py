"""The synth corpus's sentence grammar and vocabulary: lengths, words, structure, seeds."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from asrkit.data.prepare.synth.sentences import MAX_WORDS, MIN_WORDS, generate_sentence
from asrkit.data.prepare.synth.vocabulary import VERBS, VOCABULARY, spell_number

VERB_FORMS = frozenset(w for verbs in VERBS.values() for forms in verbs for w in forms) | {
    "is", "are", "was", "were", "am"}

PRONOUN_BE = {"i": {"am", "was"}, "he": {"is", "was"}, "she": {"is", "was"},
              "we": {"are", "were"}, "they": {"are", "were"}, "you": {"are", "were"}}
BE = {"am", "is", "are", "was", "were"}


@pytest.fixture(scope="module")
def sentences():
    rng = random.Random(1234)
    return [generate_sentence(rng) for _ in range(3000)]


def test_vocabulary_is_a_few_hundred_plain_words():
    assert 300 <= len(VOCABULARY) <= 600
    assert all(re.fullmatch(r"[a-z]+", w) for w in VOCABULARY)
    assert len([forms for verbs in VERBS.values() for forms in verbs]) >= 40


def test_sentences_have_the_stated_length_and_only_vocabulary_words(sentences):
    for s in sentences:
        words = s.text.split()
        assert MIN_WORDS <= len(words) <= MAX_WORDS, s.text
        assert set(words) <= VOCABULARY, s.text
        assert s.text == " ".join(words) and s.text == s.text.lower()
    lengths = {len(s.text.split()) for s in sentences}
    assert {MIN_WORDS, MAX_WORDS} <= lengths  # the whole range occurs


def test_sentences_have_structure_not_word_salad(sentences):
    with_verb = sum(any(w in VERB_FORMS for w in s.text.split()) for s in sentences)
    assert with_verb / len(sentences) > 0.95
    questions = [s for s in sentences if s.question]
    assert 0.1 < len(questions) / len(sentences) < 0.4
    openers = {s.text.split()[0] for s in questions}
    assert {"where", "what", "who", "how", "did"} <= openers
    assert len({s.text for s in sentences}) > 0.97 * len(sentences)
    used = {w for s in sentences for w in s.text.split()}
    assert len(used) > 0.9 * len(VOCABULARY)  # the grammar reaches (nearly) every word


def test_articles_and_agreement(sentences):
    for s in sentences:
        words = s.text.split()
        for word, following in itertools.pairwise(words):
            if word == "a":
                assert following[0] not in "aeiou", s.text
            if word == "an":
                assert following[0] in "aeiou", s.text
        if words[0] in PRONOUN_BE and words[1] in BE:
            assert words[1] in PRONOUN_BE[words[0]], s.text


def test_numbers_are_spelled_out():
    assert spell_number(7) == "seven"
    assert spell_number(13) == "thirteen"
    assert spell_number(40) == "forty"
    assert spell_number(99) == "ninety nine"
    assert spell_number(305) == "three hundred five"
    assert spell_number(110) == "one hundred ten"
    with pytest.raises(ValueError, match="1000"):
        spell_number(1000)


def test_sentences_are_deterministic_per_seed():
    def draw(seed: int) -> list[str]:
        rng = random.Random(seed)
        return [generate_sentence(rng).text for _ in range(50)]

    assert draw(5) == draw(5)
    assert draw(5) != draw(6)
