"""Phrases for the synth sentence grammar: noun phrases, subjects, verb groups, adjuncts.

Each function draws one phrase with the given `random.Random` and returns its words. Verb
groups agree with their subject ("i" / third person singular "sg3" / plural "pl") and
tense; objects come from the noun classes their verb takes. sentences.py puts phrases
together into sentences.

    >>> import random; import asrkit.data.prepare.synth.phrases as P
    >>> P.noun_phrase(random.Random(2), (P.V.ANIMALS,))
    (['that', 'new', 'tall', 'cat'], False)
"""

from __future__ import annotations

import random

import asrkit.data.prepare.synth.vocabulary as V

TENSES, TENSE_WEIGHTS = ("present", "past", "progressive", "modal"), (0.3, 0.35, 0.15, 0.2)
TIMES = {"present": V.TIME_PRESENT, "past": V.TIME_PAST, "progressive": V.TIME_NOW,
         "modal": V.TIME_FUTURE}
OBJECTS = {  # verb class -> noun classes its object comes from
    "any": (V.PEOPLE, V.ANIMALS, V.THINGS, V.FOOD), "movable": (V.THINGS, V.ANIMALS, V.FOOD),
    "thing": (V.THINGS,), "food": (V.FOOD,), "animate": (V.PEOPLE, V.ANIMALS),
    "place": (V.PLACES,),
}
TRANSITIVE = tuple(OBJECTS)
Words = list[str]


def noun(rng: random.Random, classes: tuple) -> tuple[str, str]:
    return rng.choice([pair for nouns in classes for pair in nouns])


def noun_phrase(
    rng: random.Random, classes: tuple, plural: bool | None = None, indefinite: bool = False
) -> tuple[Words, bool]:
    """Determiner, up to two adjectives and a noun; returns (words, is plural)."""
    plural = rng.random() < 0.3 if plural is None else plural
    adjectives = rng.sample(V.ADJECTIVES, rng.choices((0, 1, 2), (0.55, 0.35, 0.1))[0])
    head = noun(rng, classes)[plural]
    if indefinite:
        det = rng.choice(["some", "many", number(rng, 2)]) if plural else rng.choice(["a", "no"])
    elif plural:
        det = rng.choices(["the", rng.choice(["these", "those"]), "some", "many",
                           rng.choice(["my", "your", "our", "their", "his", "her"]),
                           number(rng, 2)], (0.35, 0.1, 0.15, 0.05, 0.15, 0.2))[0]
    else:
        det = rng.choices(["the", "a", rng.choice(["this", "that", "every"]),
                           rng.choice(["my", "your", "our", "their", "his", "her"])],
                          (0.45, 0.25, 0.1, 0.2))[0]
    if det == "a" and (adjectives or [head])[0][0] in "aeiou":
        det = "an"
    return [det, *adjectives, head], plural


def number(rng: random.Random, low: int = 1) -> str:
    """Mostly small numbers, sometimes up to 99, rarely hundreds."""
    high = rng.choices((12, 99, 999), (0.5, 0.4, 0.1))[0]
    return V.spell_number(rng.randint(low, high))


def subject(rng: random.Random) -> tuple[Words, str]:
    """(words, agreement) with agreement one of "i", "sg3", "pl"."""
    r = rng.random()
    if r < 0.15:
        pronoun = rng.choice(["i", "you", "he", "she", "we", "they"])
        return [pronoun], {"i": "i", "he": "sg3", "she": "sg3"}.get(pronoun, "pl")
    if r < 0.27:
        return [rng.choice(V.NAMES)], "sg3"
    words, plural = noun_phrase(rng, (V.PEOPLE, V.ANIMALS))
    return words, "pl" if plural else "sg3"


def object_phrase(rng: random.Random, verb_class: str) -> Words:
    if verb_class in ("any", "animate") and rng.random() < 0.15:
        return [rng.choice(("me", "him", "her", "us", "them", *V.NAMES))]
    if verb_class == "food" and rng.random() < 0.25:
        return [rng.choice(["some", "the", "my", "our"]), rng.choice(V.MASS_FOOD)]
    return noun_phrase(rng, OBJECTS[verb_class])[0]


def be(agreement: str, past: bool) -> str:
    if past:
        return "were" if agreement == "pl" else "was"
    return {"i": "am", "sg3": "is", "pl": "are"}[agreement]


def verb_group(rng: random.Random, forms: tuple, agreement: str, tense: str) -> Words:
    """The verb group of a statement, negated now and then."""
    negate = rng.random() < 0.08
    base, third, past, ing = forms
    if tense == "progressive":
        return [be(agreement, rng.random() < 0.3), *(["not"] if negate else []), ing]
    if tense == "modal":
        return [rng.choice(["will", "can", "should", "must"]), *(["not"] if negate else []), base]
    if negate:
        aux = "did" if tense == "past" else "does" if agreement == "sg3" else "do"
        return [aux, "not", base]
    return [past] if tense == "past" else [third if agreement == "sg3" else base]


def place(rng: random.Random) -> Words:
    return [rng.choice(V.PREPOSITIONS_PLACE), *noun_phrase(rng, (V.PLACES, V.THINGS), False)[0]]


def direction(rng: random.Random) -> Words:
    return [rng.choice(V.PREPOSITIONS_DIRECTION), *noun_phrase(rng, (V.PLACES,), False)[0]]


def tail(rng: random.Random, tense: str, place_prob: float = 0.3) -> Words:
    words = place(rng) if rng.random() < place_prob else []
    if rng.random() < 0.12:
        words.append(rng.choice(V.ADVERBS))
    return words + ([rng.choice(TIMES[tense])] if rng.random() < 0.25 else [])
