"""A small probabilistic grammar of English sentences over the synth vocabulary.

Sentences are statements (transitive, intransitive, copula, ages, "there is"), yes/no and
wh-questions, commands and two clauses joined by a conjunction. Subjects agree with their
verbs in person, number and tense (present, past, progressive, modal), numbers are
spelled out, and objects are drawn from the noun class a verb takes (you eat food and
open things), so the text reads like language rather than a word list. The transcript is
lowercase words without punctuation, 4 to 14 words long.

    python -m asrkit.data.prepare.synth.sentences 5     # print five sentences
"""

from __future__ import annotations

import random
import sys
from typing import Callable, NamedTuple

from asrkit.data.prepare.synth import vocabulary as V

MIN_WORDS, MAX_WORDS = 4, 14
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


class Sentence(NamedTuple):
    text: str       # the transcript: lowercase words, no punctuation
    question: bool  # read with a question's intonation


def generate_sentence(rng: random.Random) -> Sentence:
    """One sentence of MIN_WORDS..MAX_WORDS words drawn with `rng`."""
    while True:
        template = rng.choices(TEMPLATES, weights=WEIGHTS)[0]
        words, question = template(rng)
        words = " ".join(words).split()  # phrases like "last night" count as two words
        if MIN_WORDS <= len(words) <= MAX_WORDS:
            return Sentence(" ".join(words), question)


# ---- phrases ---------------------------------------------------------------------------

def _noun(rng: random.Random, classes: tuple) -> tuple[str, str]:
    return rng.choice([pair for nouns in classes for pair in nouns])


def _noun_phrase(
    rng: random.Random, classes: tuple, plural: bool | None = None, indefinite: bool = False
) -> tuple[Words, bool]:
    """Determiner, up to two adjectives and a noun; returns (words, is plural)."""
    plural = rng.random() < 0.3 if plural is None else plural
    adjectives = rng.sample(V.ADJECTIVES, rng.choices((0, 1, 2), (0.55, 0.35, 0.1))[0])
    noun = _noun(rng, classes)[plural]
    if indefinite:
        det = rng.choice(["some", "many", _number(rng, 2)]) if plural else rng.choice(["a", "no"])
    elif plural:
        det = rng.choices(["the", rng.choice(["these", "those"]), "some", "many",
                           rng.choice(["my", "your", "our", "their", "his", "her"]),
                           _number(rng, 2)], (0.35, 0.1, 0.15, 0.05, 0.15, 0.2))[0]
    else:
        det = rng.choices(["the", "a", rng.choice(["this", "that", "every"]),
                           rng.choice(["my", "your", "our", "their", "his", "her"])],
                          (0.45, 0.25, 0.1, 0.2))[0]
    if det == "a" and (adjectives or [noun])[0][0] in "aeiou":
        det = "an"
    return [det, *adjectives, noun], plural


def _number(rng: random.Random, low: int = 1) -> str:
    """Mostly small numbers, sometimes up to 99, rarely hundreds."""
    high = rng.choices((12, 99, 999), (0.5, 0.4, 0.1))[0]
    return V.spell_number(rng.randint(low, high))


def _subject(rng: random.Random) -> tuple[Words, str]:
    """(words, agreement) with agreement one of "i", "sg3", "pl"."""
    r = rng.random()
    if r < 0.15:
        pronoun = rng.choice(["i", "you", "he", "she", "we", "they"])
        return [pronoun], {"i": "i", "he": "sg3", "she": "sg3"}.get(pronoun, "pl")
    if r < 0.27:
        return [rng.choice(V.NAMES)], "sg3"
    words, plural = _noun_phrase(rng, (V.PEOPLE, V.ANIMALS))
    return words, "pl" if plural else "sg3"


def _object(rng: random.Random, verb_class: str) -> Words:
    if verb_class in ("any", "animate") and rng.random() < 0.15:
        return [rng.choice(["me", "him", "her", "us", "them"] + V.NAMES)]
    if verb_class == "food" and rng.random() < 0.25:
        return [rng.choice(["some", "the", "my", "our"]), rng.choice(V.MASS_FOOD)]
    return _noun_phrase(rng, OBJECTS[verb_class])[0]


def _be(agreement: str, past: bool) -> str:
    if past:
        return "were" if agreement == "pl" else "was"
    return {"i": "am", "sg3": "is", "pl": "are"}[agreement]


def _verb(rng: random.Random, forms: tuple, agreement: str, tense: str) -> Words:
    """The verb group of a statement, negated now and then."""
    negate = rng.random() < 0.08
    base, third, past, ing = forms
    if tense == "progressive":
        return [_be(agreement, rng.random() < 0.3), *(["not"] if negate else []), ing]
    if tense == "modal":
        return [rng.choice(["will", "can", "should", "must"]), *(["not"] if negate else []), base]
    if negate:
        aux = "did" if tense == "past" else "does" if agreement == "sg3" else "do"
        return [aux, "not", base]
    return [past] if tense == "past" else [third if agreement == "sg3" else base]


def _place(rng: random.Random) -> Words:
    return [rng.choice(V.PREPOSITIONS_PLACE), *_noun_phrase(rng, (V.PLACES, V.THINGS), False)[0]]


def _direction(rng: random.Random) -> Words:
    return [rng.choice(V.PREPOSITIONS_DIRECTION), *_noun_phrase(rng, (V.PLACES,), False)[0]]


def _tail(rng: random.Random, tense: str, place: float = 0.3) -> Words:
    words = _place(rng) if rng.random() < place else []
    if rng.random() < 0.12:
        words.append(rng.choice(V.ADVERBS))
    return words + ([rng.choice(TIMES[tense])] if rng.random() < 0.25 else [])


# ---- sentence templates: each returns (words, is a question) ---------------------------

def _transitive(rng: random.Random) -> tuple[Words, bool]:
    subject, agreement = _subject(rng)
    tense = rng.choices(TENSES, TENSE_WEIGHTS)[0]
    verb_class = rng.choice(TRANSITIVE)
    verb = _verb(rng, rng.choice(V.VERBS[verb_class]), agreement, tense)
    if tense == "present" and len(verb) == 1 and rng.random() < 0.3:
        verb = [rng.choice(V.FREQUENCY), *verb]
    return subject + verb + _object(rng, verb_class) + _tail(rng, tense), False


def _intransitive(rng: random.Random) -> tuple[Words, bool]:
    subject, agreement = _subject(rng)
    tense = rng.choices(TENSES, TENSE_WEIGHTS)[0]
    motion = rng.random() < 0.5
    verb = _verb(rng, rng.choice(V.VERBS["motion" if motion else "still"]), agreement, tense)
    where = _direction(rng) if motion else _place(rng) if rng.random() < 0.7 else ["here"]
    return subject + verb + where + _tail(rng, tense, place=0.0), False


def _ditransitive(rng: random.Random) -> tuple[Words, bool]:
    subject, agreement = _subject(rng)
    tense = rng.choices(TENSES, TENSE_WEIGHTS)[0]
    verb = _verb(rng, rng.choice(V.VERBS["ditransitive"]), agreement, tense)
    person = _object(rng, "animate")
    thing = _noun_phrase(rng, (V.THINGS, V.FOOD))[0]
    objects = person + thing if rng.random() < 0.5 else thing + ["to"] + person
    return subject + verb + objects + _tail(rng, tense, place=0.0), False


def _copula(rng: random.Random) -> tuple[Words, bool]:
    past = rng.random() < 0.4
    r = rng.random()
    if r < 0.3:  # there is / there are
        words, plural = _noun_phrase(rng, (V.ANIMALS, V.THINGS, V.FOOD), indefinite=True)
        return ["there", _be("pl" if plural else "sg3", past), *words, *_place(rng)], False
    if r < 0.45:  # ages
        subject, _ = _noun_phrase(rng, (V.PEOPLE, V.ANIMALS), plural=False)
        return subject + [_be("sg3", past), V.spell_number(rng.randint(2, 99)), "years", "old"], False
    animate = rng.random() < 0.5
    subject, plural = _noun_phrase(rng, (V.PEOPLE, V.ANIMALS) if animate else (V.THINGS, V.PLACES))
    if not animate and rng.random() < 0.1:
        subject, plural = ["it"], False
    be = _be("pl" if plural else "sg3", past)
    if rng.random() < 0.3:
        return subject + [be] + _place(rng), False
    adjective = rng.choice(V.PERSON_ADJECTIVES if animate else V.ADJECTIVES)
    return subject + [be] + (["very"] if rng.random() < 0.2 else []) + [adjective], False


def _yes_no_question(rng: random.Random) -> tuple[Words, bool]:
    subject, agreement = _subject(rng)
    verb_class = rng.choice(TRANSITIVE)
    base, _, _, ing = rng.choice(V.VERBS[verb_class])
    obj = _object(rng, verb_class)
    r = rng.random()
    if r < 0.4:
        aux = rng.choice(["did", "does" if agreement == "sg3" else "do"])
        return [aux, *subject, base, *obj], True
    if r < 0.7:
        return [rng.choice(["can", "will", "should"]), *subject, base, *obj], True
    if r < 0.85:
        return [_be(agreement, rng.random() < 0.3), *subject, ing, *obj], True
    return [_be(agreement, False), *subject, rng.choice(V.PERSON_ADJECTIVES)], True


def _wh_question(rng: random.Random) -> tuple[Words, bool]:
    subject, agreement = _subject(rng)
    do = rng.choice(["did", "does" if agreement == "sg3" else "do", "will", "can"])
    r = rng.random()
    if r < 0.2:
        thing, plural = _noun_phrase(rng, (V.PEOPLE, V.ANIMALS, V.THINGS))
        return ["where", _be("pl" if plural else "sg3", rng.random() < 0.3), *thing], True
    if r < 0.35:
        verb = rng.choice(V.VERBS["motion"] + V.VERBS["still"])[0]
        return [rng.choice(["where", "when", "why"]), do, *subject, verb], True
    if r < 0.55:
        verb = rng.choice(V.VERBS[rng.choice(["movable", "thing", "food"])])[0]
        return ["what", do, *subject, verb, *(_place(rng) if rng.random() < 0.5 else [])], True
    if r < 0.7:
        verb_class = rng.choice(TRANSITIVE)
        _, third, past, _ = rng.choice(V.VERBS[verb_class])
        return ["who", rng.choice([third, past]), *_object(rng, verb_class)], True
    if r < 0.85:
        verb_class = rng.choice(["movable", "thing", "food"])
        noun = _noun(rng, OBJECTS[verb_class])[1]
        first = ["how", "many"] if rng.random() < 0.6 else ["which"]
        return [*first, noun, do, *subject, rng.choice(V.VERBS[verb_class])[0]], True
    if r < 0.93:
        return ["how", "old", _be("sg3", False), *_noun_phrase(rng, (V.PEOPLE,), False)[0]], True
    thing, plural = _noun_phrase(rng, (V.THINGS, V.PLACES))
    return ["why", _be("pl" if plural else "sg3", True), *thing, rng.choice(V.ADJECTIVES)], True


def _command(rng: random.Random) -> tuple[Words, bool]:
    start = rng.choices([[], ["please"], ["do", "not"]], (0.5, 0.35, 0.15))[0]
    if rng.random() < 0.25:
        verb = rng.choice(V.VERBS["motion"] + V.VERBS["still"])[0]
        return start + [verb, *(["here"] if rng.random() < 0.3 else _place(rng))], False
    verb_class = rng.choice(["movable", "thing", "food", "animate"])
    verb = rng.choice(V.VERBS[verb_class])[0]
    return start + [verb, *_object(rng, verb_class), *_tail(rng, "modal")], False


def _compound(rng: random.Random) -> tuple[Words, bool]:
    first = rng.choice([_transitive, _intransitive])(rng)[0]
    second = rng.choice([_transitive, _intransitive, _copula])(rng)[0]
    return first + [rng.choice(V.CONJUNCTIONS)] + second, False


TEMPLATES: tuple[Callable[[random.Random], tuple[Words, bool]], ...] = (
    _transitive, _intransitive, _ditransitive, _copula, _yes_no_question, _wh_question,
    _command, _compound,
)
WEIGHTS = (0.27, 0.17, 0.08, 0.14, 0.1, 0.12, 0.06, 0.06)


if __name__ == "__main__":
    demo = random.Random(0)
    for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 10):
        print(generate_sentence(demo).text)
