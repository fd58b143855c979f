"""The word lists the synth sentence grammar draws from (a few hundred English words).

Every word is lowercase, spelled as espeak-ng and flite pronounce it, and free of the
usual traps: no abbreviations, no digits, no homographs whose pronunciation depends on
sense (read, live, lead, wind, close, tear, record, present, ...). Nouns come with their
plural and verbs with their (third person, past, -ing) forms so the grammar can agree
subject and verb. `VOCABULARY` is the set of every word a sentence can contain.

    python -c "from asrkit.data.prepare.synth.vocabulary import VOCABULARY; print(len(VOCABULARY))"
"""

from __future__ import annotations


def _words(block: str) -> tuple[str, ...]:
    """'big small old' -> ('big', 'small', 'old')."""
    return tuple(block.split())


def _pairs(block: str) -> tuple[tuple[str, str], ...]:
    """'dog dogs, man men' -> (('dog', 'dogs'), ('man', 'men'))."""
    return tuple(tuple(item.split()) for item in block.split(","))  # type: ignore[misc]


def _verbs(block: str) -> tuple[tuple[str, str, str, str], ...]:
    """'see sees saw seeing, ...' -> ((base, third person, past, -ing), ...)."""
    return tuple(tuple(item.split()) for item in block.split(","))  # type: ignore[misc]


# Nouns by semantic class: (singular, plural).
PEOPLE = _pairs(
    "man men, woman women, boy boys, girl girls, child children, teacher teachers,"
    "doctor doctors, farmer farmers, driver drivers, student students, friend friends,"
    "king kings, queen queens, sister sisters, brother brothers, mother mothers,"
    "father fathers, baby babies, nurse nurses, pilot pilots"
)
ANIMALS = _pairs(
    "dog dogs, cat cats, horse horses, cow cows, bird birds, mouse mice, rabbit rabbits,"
    "duck ducks, sheep sheep, goat goats, fox foxes, bear bears, lion lions,"
    "frog frogs"
)
THINGS = _pairs(
    "box boxes, ball balls, book books, cup cups, key keys, letter letters, bag bags,"
    "hat hats, coat coats, shoe shoes, chair chairs, table tables, clock clocks,"
    "pen pens, map maps, picture pictures, basket baskets, bottle bottles, plate plates,"
    "knife knives, ring rings, flower flowers, stone stones, rope ropes, blanket blankets,"
    "candle candles, ticket tickets, umbrella umbrellas, window windows, door doors,"
    "bicycle bicycles, car cars, boat boats, toy toys"
)
PLACES = _pairs(
    "house houses, garden gardens, park parks, school schools, kitchen kitchens,"
    "river rivers, forest forests, village villages, city cities, market markets,"
    "station stations, bridge bridges, beach beaches, hill hills, farm farms, shop shops,"
    "library libraries, hospital hospitals, office offices, street streets, lake lakes,"
    "mountain mountains, island islands, room rooms, field fields"
)
FOOD = _pairs(
    "apple apples, orange oranges, banana bananas, cake cakes, egg eggs, potato potatoes,"
    "tomato tomatoes, carrot carrots, sandwich sandwiches, cookie cookies, pie pies,"
    "lemon lemons, cherry cherries, onion onions"
)
MASS_FOOD = ("bread", "rice", "soup", "milk", "cheese", "water", "tea", "coffee", "honey")

# Verbs: (base, third person singular, past, -ing).
VERBS = {
    # transitive, by the noun classes their object comes from
    "any": _verbs("see sees saw seeing, like likes liked liking, love loves loved loving"),
    "movable": _verbs(
        "find finds found finding, want wants wanted wanting, carry carries carried carrying,"
        "hold holds held holding, bring brings brought bringing, take takes took taking"
    ),
    "thing": _verbs(
        "buy buys bought buying, sell sells sold selling, open opens opened opening,"
        "drop drops dropped dropping, lose loses lost losing, keep keeps kept keeping,"
        "fix fixes fixed fixing, clean cleans cleaned cleaning"
    ),
    "food": _verbs("eat eats ate eating, cook cooks cooked cooking, make makes made making"),
    "animate": _verbs(
        "watch watches watched watching, help helps helped helping, call calls called calling,"
        "follow follows followed following, meet meets met meeting"
    ),
    "place": _verbs("visit visits visited visiting, leave leaves left leaving"),
    # intransitive; "motion" verbs take a direction (to the park), "still" ones a place
    "motion": _verbs(
        "walk walks walked walking, run runs ran running, go goes went going,"
        "come comes came coming, drive drives drove driving, fly flies flew flying"
    ),
    "still": _verbs(
        "sleep sleeps slept sleeping, sing sings sang singing, wait waits waited waiting,"
        "sit sits sat sitting, swim swims swam swimming, laugh laughs laughed laughing,"
        "dance dances danced dancing, play plays played playing, work works worked working"
    ),
    # give someone something / give something to someone
    "ditransitive": _verbs(
        "give gives gave giving, show shows showed showing, send sends sent sending"
    ),
}

ADJECTIVES = _words(
    "big small old new young tall short long little happy sad quiet loud warm cold hot dark"
    " bright clean dirty heavy empty full soft strong brown red blue green yellow white black"
    " pink purple golden wooden broken beautiful strange tired hungry busy lucky famous"
    " friendly angry gentle rich poor"
)
PERSON_ADJECTIVES = _words("happy sad tired hungry busy angry lucky young old tall")

NAMES = _words("john mary peter anna tom lucy david emma paul sarah james kate")

ADVERBS = _words("quickly slowly quietly carefully happily loudly again together")
FREQUENCY = _words("always never often sometimes usually")
PREPOSITIONS_PLACE = _words("in on under near behind beside inside")
PREPOSITIONS_DIRECTION = _words("to into across through around along toward")
TIME_PAST = ("yesterday", "last night", "last week", "this morning", "two days ago")
TIME_PRESENT = ("every day", "every morning", "in the evening", "at night", "on sunday")
TIME_FUTURE = ("tomorrow", "tonight", "next week", "next year", "in the afternoon")
TIME_NOW = ("now", "right now", "today", "this evening")
CONJUNCTIONS = _words("and but because while")

UNITS = _words("one two three four five six seven eight nine")
TEENS = _words("ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen")
TENS = _words("twenty thirty forty fifty sixty seventy eighty ninety")

FUNCTION_WORDS = _words(
    "the a an this that these those every my your his her our their some many no"
    " i you he she it we they me him us them"
    " is are was were am will can should must do does did not"
    " there here where what who why how when which please very years old hundred"
)


def spell_number(n: int) -> str:
    """1 <= n <= 999 in words: 42 -> 'forty two', 305 -> 'three hundred five'."""
    if not 1 <= n <= 999:
        raise ValueError(f"spell_number: {n} is outside 1..999")
    words: list[str] = []
    if n >= 100:
        words += [UNITS[n // 100 - 1], "hundred"]
        n %= 100
    if n >= 20:
        words.append(TENS[n // 10 - 2])
        n %= 10
    if n >= 10:
        words.append(TEENS[n - 10])
    elif n > 0:
        words.append(UNITS[n - 1])
    return " ".join(words)


def _all_words() -> frozenset[str]:
    words: set[str] = set(FUNCTION_WORDS) | set(ADJECTIVES) | set(NAMES) | set(MASS_FOOD)
    for nouns in (PEOPLE, ANIMALS, THINGS, PLACES, FOOD):
        for pair in nouns:
            words.update(pair)
    for verbs in VERBS.values():
        for forms in verbs:
            words.update(forms)
    for group in (ADVERBS, FREQUENCY, PREPOSITIONS_PLACE, PREPOSITIONS_DIRECTION, CONJUNCTIONS,
                  UNITS, TEENS, TENS, TIME_PAST, TIME_PRESENT, TIME_FUTURE, TIME_NOW):
        for phrase in group:
            words.update(phrase.split())
    return frozenset(words)


VOCABULARY: frozenset[str] = _all_words()
