"""Dynamic prompts: the part of the dynamicprompts library's template syntax that batches use,
parsed with positions for messages, then drawn (one random text), enumerated (every text) or
counted (how many texts, without making them). Pure: wildcard files are read by the caller and
passed in as parsed templates.

Supported (as the dynamicprompts library writes it):

    {red|green|blue}          one option, equally likely
    {2::red|1::blue}          weighted options (a missing weight is 1)
    {2$$a|b|c}                two different options, joined by ", "
    {1-3$$a|b|c}, {-2$$…}, {2-$$…}   a number of options in a range (bounds may be left out)
    {2$$ and $$a|b|c}         two options joined by " and "
    {2$$__colours__}          two different lines of a wildcard file
    __hair__, __sub/dir__     one line of hair.txt (sub/dir.txt) of the wildcards folder;
                              its lines may use the syntax too (nesting)
    \\{ \\} \\| \\$ \\_         the character itself

Braces nest, up to MAX_NESTING deep. `|`, `::` and `$$` mean something only inside braces; `}`
without its `{` and a `{` never closed are errors, and so are counts and weights of more than
MAX_NUMBER_DIGITS digits. Not supported: `${var=…}` variables, globbing (`__colours*__`), YAML and
JSON wildcard files, conditionals, parameterized templates.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

ESCAPABLE: Final = frozenset("{}|$_")
MAX_NESTING: Final = 32  # braces within braces; the parser and the draws recurse once per level
MAX_NUMBER_DIGITS: Final = 9  # in a count ({2$$…}) or a weight ({2::…})
DEFAULT_SEPARATOR: Final = ", "
# A wildcard's name: letters, digits, _ - . and / for subfolders; it starts with a letter or digit
# so that `^__^` and similar text stays text.
WILDCARD: Final = re.compile(r"__([^\W_][\w\-./]*?)__")
# `{2$$`, `{1-3$$`, `{-2$$`, `{2-$$` at the start of a variant.
COUNT: Final = re.compile(r"\s*(\d+)?\s*(?:(-)\s*(\d+)?\s*)?\$\$")
SEPARATOR: Final = re.compile(r"([^|{}]*?)\$\$")
WEIGHT: Final = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*::")
PLAIN: Final = re.compile(r"[^\\{}|_]+")
SYNTAX_HINT: Final = re.compile(r"[\\{}]|__")


class PromptSyntaxError(ValueError):
    """A template that cannot be read; `position` is 0-based. Turned into a BadInput, with the
    file and the JSON path, by whoever parsed it."""

    def __init__(self, text: str, position: int, problem: str) -> None:
        self.position = position
        self.problem = problem
        snippet = text[max(0, position - 20) : position + 20]
        super().__init__(f"{problem} (character {position + 1}: {snippet!r})")


@dataclass(frozen=True)
class Literal:
    text: str


@dataclass(frozen=True)
class Wildcard:
    name: str  # "hair", "sub/dir"
    source: str  # "__hair__", as written


@dataclass(frozen=True)
class Option:
    weight: float
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class Variant:
    options: tuple[Option, ...]
    low: int
    high: int | None  # None: as many as there are options
    separator: str
    source: str  # "{red|green}", as written
    # `{2$$__colours__}`: the options are the lines of this wildcard, drawn without repeats.
    from_wildcard: Wildcard | None = None

    @property
    def weights(self) -> list[float]:
        return [option.weight for option in self.options]


Part = Literal | Wildcard | Variant


@dataclass(frozen=True)
class Template:
    text: str
    parts: tuple[Part, ...]
    literal: str | None = None  # the text to send when there is nothing to draw (escapes removed)

    @property
    def is_static(self) -> bool:
        return self.literal is not None


class RandomSource(Protocol):
    """Where draws come from: `random.Random` fits."""

    def random(self) -> float: ...


@dataclass(frozen=True)
class Pick:
    """One choice made in a template: what was written, what it gave."""

    source: str
    chosen: str


# A wildcard's name -> its lines, parsed.
Wildcards = Mapping[str, Sequence[Template]]


def might_be_dynamic(text: str) -> bool:
    """False when `text` certainly has no syntax (most prompts): it needs no parsing."""
    return SYNTAX_HINT.search(text) is not None


def parse(text: str) -> Template:
    """The template `text` is; PromptSyntaxError for an unbalanced brace or a bad range."""
    if not might_be_dynamic(text):
        return Template(text, (Literal(text),) if text else (), text)
    parts = _Parser(text).sequence(inside=False)
    static = all(isinstance(part, Literal) for part in parts)
    return Template(text, parts, "".join(part.text for part in parts if isinstance(part, Literal)) if static else None)


def wildcard_names(template: Template) -> list[str]:
    """The wildcards a template uses (not those its wildcards use), in order, once each."""
    names: dict[str, None] = {}
    _collect_names(template.parts, names)
    return list(names)


def draw(template: Template, rng: RandomSource, wildcards: Wildcards) -> tuple[str, tuple[Pick, ...]]:
    """One text of the template, and the choices written directly in it (nested ones are part
    of their outer choice)."""
    if template.literal is not None:
        return template.literal, ()
    picks = []
    texts = []
    for part in template.parts:
        if isinstance(part, Literal):
            texts.append(part.text)
        else:
            text = _draw_part(part, rng, wildcards)
            picks.append(Pick(part.source, text))
            texts.append(text)
    return "".join(texts), tuple(picks)


def every_text(
    template: Template, wildcards: Wildcards, memo: dict[Part, list[str]] | None = None
) -> Iterator[tuple[str, tuple[Pick, ...]]]:
    """Every text of the template, in order (first choice varies slowest), with its choices.
    Weights do not matter here; `{2$$a|b|c}` gives the combinations a, b / a, c / b, c."""
    memo = {} if memo is None else memo
    alternatives = [_part_texts(part, wildcards, memo) for part in template.parts]
    for combination in itertools.product(*alternatives):
        picks = tuple(
            Pick(part.source, text)
            for part, text in zip(template.parts, combination, strict=True)
            if not isinstance(part, Literal)
        )
        yield "".join(combination), picks


def count(template: Template, wildcards: Wildcards, memo: dict[str, int] | None = None) -> int:
    """How many texts `every_text` gives, computed without making them."""
    memo = {} if memo is None else memo
    return _count_parts(template.parts, wildcards, memo)


def wildcard_cycle(wildcards: Wildcards) -> list[str] | None:
    """A chain of wildcards that uses itself (["a", "b", "a"]), or None."""
    uses = {name: {n for line in lines for n in wildcard_names(line)} for name, lines in wildcards.items()}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done or name not in uses:
            return None
        for used in sorted(uses[name]):
            found = visit(used, [*path, name])
            if found:
                return found
        done.add(name)
        return None

    for name in uses:
        found = visit(name, [])
        if found:
            return found
    return None


# --------------------------------------------------------------------------- parsing


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0  # braces open around the current position

    def sequence(self, inside: bool) -> tuple[Part, ...]:
        """Parts up to the end, or (inside braces) up to the `|` or `}` that ends an option."""
        text = self.text
        parts: list[Part] = []
        literal: list[str] = []
        while self.pos < len(text):
            char = text[self.pos]
            plain = PLAIN.match(text, self.pos)
            if plain:
                literal.append(plain.group())
                self.pos = plain.end()
            elif char == "\\":
                escaped = self.pos + 1 < len(text) and text[self.pos + 1] in ESCAPABLE
                literal.append(text[self.pos + 1] if escaped else char)
                self.pos += 2 if escaped else 1
            elif char == "{":
                _flush(literal, parts)
                parts.append(self.variant())
            elif char == "}" or char == "|":
                if inside:
                    break
                if char == "}":
                    raise PromptSyntaxError(text, self.pos, "'}' closes no '{' (write \\} for a literal brace)")
                literal.append(char)
                self.pos += 1
            else:  # "_"
                wildcard = WILDCARD.match(text, self.pos)
                if wildcard:
                    _flush(literal, parts)
                    parts.append(Wildcard(wildcard.group(1), wildcard.group()))
                    self.pos = wildcard.end()
                else:
                    literal.append(char)
                    self.pos += 1
        _flush(literal, parts)
        return tuple(parts)

    def variant(self) -> Variant:
        text, start = self.text, self.pos
        if self.depth >= MAX_NESTING:
            raise PromptSyntaxError(text, start, f"braces are nested more than {MAX_NESTING} deep")
        self.depth += 1
        try:
            return self._variant(text, start)
        finally:
            self.depth -= 1

    def _variant(self, text: str, start: int) -> Variant:
        self.pos += 1
        low, separator = 1, DEFAULT_SEPARATOR
        high: int | None = 1
        bound = COUNT.match(text, self.pos)
        if bound and (bound.group(1) or bound.group(2)):
            low, high = _bounds(text, start, bound)
            self.pos = bound.end()
            custom = SEPARATOR.match(text, self.pos)
            if custom:
                separator = custom.group(1)
                self.pos = custom.end()
        options = []
        while True:
            weight = WEIGHT.match(text, self.pos)
            if weight:
                _check_digits(text, self.pos, weight.group(1), "a weight")
                self.pos = weight.end()
            options.append(Option(float(weight.group(1)) if weight else 1.0, self.sequence(inside=True)))
            if self.pos >= len(text):
                raise PromptSyntaxError(text, start, "'{' is never closed (write \\{ for a literal brace)")
            self.pos += 1
            if text[self.pos - 1] == "}":
                return Variant(
                    tuple(options), low, high, separator, text[start : self.pos], _over_wildcard(options, low, high)
                )


def _check_digits(text: str, position: int, number: str | None, what: str) -> None:
    if number and len(number) > MAX_NUMBER_DIGITS:
        raise PromptSyntaxError(text, position, f"{what} of more than {MAX_NUMBER_DIGITS} digits")


def _bounds(text: str, start: int, bound: re.Match[str]) -> tuple[int, int | None]:
    first, dash, second = bound.group(1), bound.group(2), bound.group(3)
    for number in (first, second):
        _check_digits(text, start, number, "a count")
    if not dash:
        return int(first), int(first)
    low = int(first) if first else 1
    high = int(second) if second else None
    if high is not None and low > high:
        raise PromptSyntaxError(text, start, f"the range {low}-{high} goes down; write {high}-{low}")
    return low, high


def _over_wildcard(options: Sequence[Option], low: int, high: int | None) -> Wildcard | None:
    if (low, high) != (1, 1) and len(options) == 1 and len(options[0].parts) == 1:
        only = options[0].parts[0]
        return only if isinstance(only, Wildcard) else None
    return None


def _flush(literal: list[str], parts: list[Part]) -> None:
    if literal:
        parts.append(Literal("".join(literal)))
        literal.clear()


def _collect_names(parts: Sequence[Part], names: dict[str, None]) -> None:
    for part in parts:
        if isinstance(part, Wildcard):
            names[part.name] = None
        elif isinstance(part, Variant):
            for option in part.options:
                _collect_names(option.parts, names)


# --------------------------------------------------------------------------- drawing


def _draw_part(part: Part, rng: RandomSource, wildcards: Wildcards) -> str:
    if isinstance(part, Literal):
        return part.text
    if isinstance(part, Wildcard):
        lines = wildcards[part.name]
        line = lines[int(rng.random() * len(lines))]
        return line.literal if line.literal is not None else _draw_parts(line.parts, rng, wildcards)
    if part.from_wildcard is None and part.low == part.high == 1:  # {a|b|c}: most variants
        return _draw_parts(part.options[_weighted_index(part.weights, rng)].parts, rng, wildcards)
    return _draw_several(part, rng, wildcards)


def _draw_parts(parts: Sequence[Part], rng: RandomSource, wildcards: Wildcards) -> str:
    if len(parts) == 1:
        return _draw_part(parts[0], rng, wildcards)
    return "".join([_draw_part(part, rng, wildcards) for part in parts])


def _draw_several(variant: Variant, rng: RandomSource, wildcards: Wildcards) -> str:
    options, weights = _options(variant, wildcards)
    low, high = _sizes(variant, len(options))
    size = low + int(rng.random() * (high - low + 1)) if low < high else low
    chosen = []
    for _ in range(size):  # without repeats
        at = _weighted_index(weights, rng)
        chosen.append(options.pop(at))
        del weights[at]
    return variant.separator.join(_draw_parts(parts, rng, wildcards) for parts in chosen)


def _weighted_index(weights: Sequence[float], rng: RandomSource) -> int:
    total = sum(weights)
    if total <= 0:
        return int(rng.random() * len(weights))
    point = rng.random() * total
    for index, weight in enumerate(weights):
        point -= weight
        if point < 0:
            return index
    return len(weights) - 1  # rounding at the very end


def _options(variant: Variant, wildcards: Wildcards) -> tuple[list[tuple[Part, ...]], list[float]]:
    if variant.from_wildcard is not None:
        lines = wildcards[variant.from_wildcard.name]
        return [line.parts for line in lines], [1.0] * len(lines)
    return [option.parts for option in variant.options], variant.weights


def _sizes(variant: Variant, available: int) -> tuple[int, int]:
    high = available if variant.high is None else min(variant.high, available)
    return min(variant.low, high), high


# --------------------------------------------------------------------------- every text, counting


def _part_texts(part: Part, wildcards: Wildcards, memo: dict[Part, list[str]]) -> list[str]:
    if isinstance(part, Literal):
        return [part.text]
    if part not in memo:
        if isinstance(part, Variant):
            memo[part] = _variant_texts(part, wildcards, memo)
        else:
            memo[part] = _lines_texts(wildcards[part.name], wildcards, memo)
    return memo[part]


def _parts_texts(parts: Sequence[Part], wildcards: Wildcards, memo: dict[Part, list[str]]) -> list[str]:
    return ["".join(texts) for texts in itertools.product(*(_part_texts(p, wildcards, memo) for p in parts))]


def _lines_texts(lines: Sequence[Template], wildcards: Wildcards, memo: dict[Part, list[str]]) -> list[str]:
    return [text for line in lines for text in _parts_texts(line.parts, wildcards, memo)]


def _variant_texts(variant: Variant, wildcards: Wildcards, memo: dict[Part, list[str]]) -> list[str]:
    options, _ = _options(variant, wildcards)
    each = [_parts_texts(option, wildcards, memo) for option in options]
    low, high = _sizes(variant, len(options))
    texts = []
    for size in range(low, high + 1):
        for chosen in itertools.combinations(range(len(options)), size):
            texts += [variant.separator.join(words) for words in itertools.product(*(each[i] for i in chosen))]
    return texts


def _count_parts(parts: Sequence[Part], wildcards: Wildcards, memo: dict[str, int]) -> int:
    total = 1
    for part in parts:
        if isinstance(part, Wildcard):
            total *= _count_wildcard(part.name, wildcards, memo)
        elif isinstance(part, Variant):
            total *= _count_variant(part, wildcards, memo)
    return total


def _count_wildcard(name: str, wildcards: Wildcards, memo: dict[str, int]) -> int:
    if name not in memo:
        memo[name] = sum(_count_parts(line.parts, wildcards, memo) for line in wildcards[name])
    return memo[name]


def _count_variant(variant: Variant, wildcards: Wildcards, memo: dict[str, int]) -> int:
    options, _ = _options(variant, wildcards)
    counts = [_count_parts(option, wildcards, memo) for option in options]
    low, high = _sizes(variant, len(counts))
    # by_size[k]: the number of texts made of k different options (elementary symmetric sums).
    by_size = [1] + [0] * high
    for option_count in counts:
        for size in range(high, 0, -1):
            by_size[size] += by_size[size - 1] * option_count
    return sum(by_size[low : high + 1])
