"""Dynamic prompts as users of the dynamicprompts library write them: drawn, enumerated, counted."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from comfyui_batch.dynprompts import (
    PromptSyntaxError,
    Template,
    count,
    draw,
    every_text,
    parse,
    wildcard_cycle,
    wildcard_names,
)


def texts(text: str, wildcards: dict[str, list[str]] | None = None) -> list[str]:
    parsed = {name: [parse(line) for line in lines] for name, lines in (wildcards or {}).items()}
    return [made for made, _ in every_text(parse(text), parsed)]


def drawn(text: str, times: int = 400, wildcards: dict[str, list[str]] | None = None) -> Counter[str]:
    parsed = {name: [parse(line) for line in lines] for name, lines in (wildcards or {}).items()}
    template = parse(text)
    return Counter(draw(template, random.Random(i), parsed)[0] for i in range(times))


def test_plain_text_is_sent_as_written() -> None:
    text = "a lighthouse at sunset, (dramatic:1.2), dress_shirt | 50% off: ^__^ $5"
    assert texts(text) == [text]
    assert parse(text).is_static


def test_one_option_is_drawn_from_braces() -> None:
    assert set(drawn("a {red|green|blue} car")) == {"a red car", "a green car", "a blue car"}


def test_weights_change_how_often_an_option_is_drawn() -> None:
    seen = drawn("{9::red|1::blue}", times=1000)
    assert seen["red"] > 800 and seen["blue"] > 40
    assert set(drawn("{0::never|1::always}")) == {"always"}


def test_several_different_options_are_joined_by_a_comma() -> None:
    seen = drawn("{2$$a|b|c}")
    assert set(seen) == {"a, b", "a, c", "b, a", "b, c", "c, a", "c, b"}
    assert texts("{2$$a|b|c}") == ["a, b", "a, c", "b, c"]


def test_a_range_of_counts_and_a_custom_separator() -> None:
    assert texts("{1-2$$ and $$a|b|c}") == ["a", "b", "c", "a and b", "a and c", "b and c"]
    assert texts("{-2$$a|b}") == ["a", "b", "a, b"]
    assert texts("{2-$$a|b|c}") == ["a, b", "a, c", "b, c", "a, b, c"]
    assert texts("{5$$a|b}") == ["a, b"]  # no more than there are
    assert set(drawn("{1-3$$a|b|c}")) >= {"a", "a, b", "c, b, a"}


def test_braces_nest() -> None:
    assert texts("{big {red|blue}|small} box") == ["big red box", "big blue box", "small box"]


def test_wildcards_take_a_line_of_their_file_and_may_nest() -> None:
    wildcards = {"hair": ["short {red|blond} hair", "__long__"], "long": ["long hair"], "sub/dir": ["x"]}
    assert texts("__hair__, __sub/dir__", wildcards) == [
        "short red hair, x",
        "short blond hair, x",
        "long hair, x",
    ]
    assert texts("{2$$__long__|b}", wildcards) == ["long hair, b"]


def test_a_count_over_a_wildcard_draws_different_lines_of_it() -> None:
    wildcards = {"colours": ["red", "green", "blue"]}
    assert texts("{2$$__colours__}", wildcards) == ["red, green", "red, blue", "green, blue"]
    assert all(len(set(made.split(", "))) == 2 for made in drawn("{2$$__colours__}", wildcards=wildcards))


@pytest.mark.parametrize(
    ("text", "literal"),
    [
        (r"\{not a choice\}", "{not a choice}"),
        (r"a \| b", "a | b"),
        (r"\__name__", "__name__"),
        (r"costs \$5", "costs $5"),
        (r"\(kept for ComfyUI\)", r"\(kept for ComfyUI\)"),
        ("a | b :: c $$ d", "a | b :: c $$ d"),  # meaningful only inside braces
    ],
)
def test_escapes_give_the_character_itself(text: str, literal: str) -> None:
    assert texts(text) == [literal]


def test_counting_agrees_with_enumerating_without_making_the_texts() -> None:
    wildcards = {"w": [parse("x"), parse("{y|z}")]}
    for text in ["a", "{a|b}{c|d|e}", "{2$$a|{b|c}|__w__}", "{0-3$$a|b|c|d}", "__w__ __w__", "{1-$$a|b}"]:
        template = parse(text)
        assert count(template, wildcards) == len(list(every_text(template, wildcards))), text
    big = parse("{a|b|c|d|e|f|g|h|i|j}" * 12)
    assert count(big, {}) == 10**12  # counted, never made


def test_each_draw_records_what_was_written_and_what_it_gave() -> None:
    wildcards = {"hair": [parse("short hair")]}
    text, picks = draw(parse("a {red|red} car, __hair__"), random.Random(1), wildcards)
    assert text == "a red car, short hair"
    assert [(p.source, p.chosen) for p in picks] == [("{red|red}", "red"), ("__hair__", "short hair")]


def test_the_same_seed_draws_the_same_text() -> None:
    template = parse("{a|b|c|d|e|f} {1-4$$g|h|i|j|k}")
    assert draw(template, random.Random(42), {}) == draw(template, random.Random(42), {})


@pytest.mark.parametrize(
    ("text", "position", "says"),
    [
        ("a {red|blue car", 2, "never closed"),
        ("a red} car", 5, "closes no"),
        ("{x|{y}", 0, "never closed"),  # the inner one is closed
        ("{3-1$$a|b}", 0, "goes down"),
    ],
)
def test_syntax_errors_say_where(text: str, position: int, says: str) -> None:
    with pytest.raises(PromptSyntaxError) as e:
        parse(text)
    assert e.value.position == position
    assert says in str(e.value) and f"character {position + 1}" in str(e.value)


def test_wildcard_names_and_circles_are_found() -> None:
    assert wildcard_names(parse("__a__ {__b__|__a__} __c/d__")) == ["a", "b", "c/d"]
    loop: dict[str, list[Template]] = {"a": [parse("__b__")], "b": [parse("x"), parse("__a__")], "c": [parse("y")]}
    assert wildcard_cycle(loop) in (["a", "b", "a"], ["b", "a", "b"])
    assert wildcard_cycle({"a": [parse("__c__")], "c": [parse("y")]}) is None
