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
from collections.abc import Callable
from typing import NamedTuple

import asrkit.data.prepare.synth.phrases as P
import asrkit.data.prepare.synth.vocabulary as V
from asrkit.data.prepare.synth.phrases import Words

MIN_WORDS, MAX_WORDS = 4, 14


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


# ---- sentence templates: each returns (words, is a question) ---------------------------

def _transitive(rng: random.Random) -> tuple[Words, bool]:
    subject, agreement = P.subject(rng)
    tense = rng.choices(P.TENSES, P.TENSE_WEIGHTS)[0]
    verb_class = rng.choice(P.TRANSITIVE)
    verb = P.verb_group(rng, rng.choice(V.VERBS[verb_class]), agreement, tense)
    if tense == "present" and len(verb) == 1 and rng.random() < 0.3:
        verb = [rng.choice(V.FREQUENCY), *verb]
    return subject + verb + P.object_phrase(rng, verb_class) + P.tail(rng, tense), False


def _intransitive(rng: random.Random) -> tuple[Words, bool]:
    subject, agreement = P.subject(rng)
    tense = rng.choices(P.TENSES, P.TENSE_WEIGHTS)[0]
    motion = rng.random() < 0.5
    verb = P.verb_group(rng, rng.choice(V.VERBS["motion" if motion else "still"]), agreement, tense)
    where = P.direction(rng) if motion else P.place(rng) if rng.random() < 0.7 else ["here"]
    return subject + verb + where + P.tail(rng, tense, place_prob=0.0), False


def _ditransitive(rng: random.Random) -> tuple[Words, bool]:
    subject, agreement = P.subject(rng)
    tense = rng.choices(P.TENSES, P.TENSE_WEIGHTS)[0]
    verb = P.verb_group(rng, rng.choice(V.VERBS["ditransitive"]), agreement, tense)
    person = P.object_phrase(rng, "animate")
    thing = P.noun_phrase(rng, (V.THINGS, V.FOOD))[0]
    objects = person + thing if rng.random() < 0.5 else thing + ["to"] + person
    return subject + verb + objects + P.tail(rng, tense, place_prob=0.0), False


def _copula(rng: random.Random) -> tuple[Words, bool]:
    past = rng.random() < 0.4
    r = rng.random()
    if r < 0.3:  # there is / there are
        words, plural = P.noun_phrase(rng, (V.ANIMALS, V.THINGS, V.FOOD), indefinite=True)
        return ["there", P.be("pl" if plural else "sg3", past), *words, *P.place(rng)], False
    if r < 0.45:  # ages
        subject, _ = P.noun_phrase(rng, (V.PEOPLE, V.ANIMALS), plural=False)
        age = V.spell_number(rng.randint(2, 99))
        return subject + [P.be("sg3", past), age, "years", "old"], False
    animate = rng.random() < 0.5
    subject, plural = P.noun_phrase(rng, (V.PEOPLE, V.ANIMALS) if animate else (V.THINGS, V.PLACES))
    if not animate and rng.random() < 0.1:
        subject, plural = ["it"], False
    be = P.be("pl" if plural else "sg3", past)
    if rng.random() < 0.3:
        return subject + [be] + P.place(rng), False
    adjective = rng.choice(V.PERSON_ADJECTIVES if animate else V.ADJECTIVES)
    return subject + [be] + (["very"] if rng.random() < 0.2 else []) + [adjective], False


def _yes_no_question(rng: random.Random) -> tuple[Words, bool]:
    subject, agreement = P.subject(rng)
    verb_class = rng.choice(P.TRANSITIVE)
    base, _, _, ing = rng.choice(V.VERBS[verb_class])
    obj = P.object_phrase(rng, verb_class)
    r = rng.random()
    if r < 0.4:
        aux = rng.choice(["did", "does" if agreement == "sg3" else "do"])
        return [aux, *subject, base, *obj], True
    if r < 0.7:
        return [rng.choice(["can", "will", "should"]), *subject, base, *obj], True
    if r < 0.85:
        return [P.be(agreement, rng.random() < 0.3), *subject, ing, *obj], True
    return [P.be(agreement, False), *subject, rng.choice(V.PERSON_ADJECTIVES)], True


def _wh_question(rng: random.Random) -> tuple[Words, bool]:
    subject, agreement = P.subject(rng)
    do = rng.choice(["did", "does" if agreement == "sg3" else "do", "will", "can"])
    r = rng.random()
    if r < 0.2:
        thing, plural = P.noun_phrase(rng, (V.PEOPLE, V.ANIMALS, V.THINGS))
        return ["where", P.be("pl" if plural else "sg3", rng.random() < 0.3), *thing], True
    if r < 0.35:
        verb = rng.choice(V.VERBS["motion"] + V.VERBS["still"])[0]
        return [rng.choice(["where", "when", "why"]), do, *subject, verb], True
    if r < 0.55:
        verb = rng.choice(V.VERBS[rng.choice(["movable", "thing", "food"])])[0]
        return ["what", do, *subject, verb, *(P.place(rng) if rng.random() < 0.5 else [])], True
    if r < 0.7:
        verb_class = rng.choice(P.TRANSITIVE)
        _, third, past, _ = rng.choice(V.VERBS[verb_class])
        return ["who", rng.choice([third, past]), *P.object_phrase(rng, verb_class)], True
    if r < 0.85:
        verb_class = rng.choice(["movable", "thing", "food"])
        noun = P.noun(rng, P.OBJECTS[verb_class])[1]
        first = ["how", "many"] if rng.random() < 0.6 else ["which"]
        return [*first, noun, do, *subject, rng.choice(V.VERBS[verb_class])[0]], True
    if r < 0.93:
        return ["how", "old", P.be("sg3", False), *P.noun_phrase(rng, (V.PEOPLE,), False)[0]], True
    thing, plural = P.noun_phrase(rng, (V.THINGS, V.PLACES))
    return ["why", P.be("pl" if plural else "sg3", True), *thing, rng.choice(V.ADJECTIVES)], True


def _command(rng: random.Random) -> tuple[Words, bool]:
    start = rng.choices([[], ["please"], ["do", "not"]], (0.5, 0.35, 0.15))[0]
    if rng.random() < 0.25:
        verb = rng.choice(V.VERBS["motion"] + V.VERBS["still"])[0]
        return start + [verb, *(["here"] if rng.random() < 0.3 else P.place(rng))], False
    verb_class = rng.choice(["movable", "thing", "food", "animate"])
    verb = rng.choice(V.VERBS[verb_class])[0]
    return start + [verb, *P.object_phrase(rng, verb_class), *P.tail(rng, "modal")], False


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
