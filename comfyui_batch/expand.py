"""Expanding a batch's entries into its numbered jobs, and counting them first. Pure: word lists
and wildcard files were read when the batch was loaded, and randomness comes from the `rng`
passed in.

For each entry of `prompts` in turn, jobs are made (and numbered) in this order:

    variables  every combination of the word lists the entry uses ($name), the variable defined
               first varying slowest
    sweep      every combination of the `sweep` lists (the first key slowest), each with every
               row of `zip` (lists paired by position)
    repeat     1 .. `repeat`; a "random" seed is drawn once per repeat, and shared by every job
               the steps above make of it, so that they differ only in what was varied
    dynamic    "random" (default): one text per job, drawn from the job's seed (or, with no seed
               among its values, from a number drawn like a seed and recorded as choice_seed);
               "all": every text, the first value varying slowest; "off": text as written

`Job.made_of` records what made each job (the entry, the variable words, sweep and zip values,
the repeat, the dynamic choices); `with_seeds` draws a job again from recorded seeds, which is
how a resumed run gets the very same texts.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from . import dynprompts
from .dynprompts import Pick, Template, Wildcards
from .errors import BadInput
from .quoting import shortened, shown_name

RANDOM: Final = "random"
# ComfyUI accepts seeds up to 2**64-1, but its web UI (JavaScript numbers) is exact only below
# 2**53, and users copy seeds from the manifest into the UI.
SEED_LIMIT: Final = 2**53
DYNAMIC_MODES: Final = ("random", "all", "off")
DEFAULT_MAX_JOBS: Final = 10_000
VARIABLE: Final = re.compile(r"(?<!\\)\$([A-Za-z_]\w*)")


@dataclass(frozen=True)
class Axis:
    """One list of a `sweep` or a `zip`."""

    name: str
    values: tuple[Any, ...]
    where: str  # its JSON path, e.g. prompts[2].sweep.cfg


@dataclass(frozen=True)
class Entry:
    """One entry of `prompts` over `generic_prompts`: what is fixed, and what varies."""

    where: str  # prompts[2]
    values: Mapping[str, Any]  # fixed values, generic ones first (those an axis sets are not here)
    sources: Mapping[str, str]  # name -> JSON path of each fixed value
    sweep: tuple[Axis, ...] = ()
    zip: tuple[Axis, ...] = ()
    repeat: int = 1

    def texts(self) -> Iterator[tuple[str, str]]:
        """(JSON path, text) of every text it holds, in fixed values and in lists."""
        for name, value in self.values.items():
            if isinstance(value, str):
                yield self.sources[name], value
        for axis in (*self.sweep, *self.zip):
            for i, value in enumerate(axis.values):
                if isinstance(value, str):
                    yield f"{axis.where}[{i}]", value


@dataclass(frozen=True)
class Expansion:
    """Everything expansion needs, as data."""

    file: Path | None  # the batch file, for messages
    entries: tuple[Entry, ...]
    variables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # name -> words, in order
    wildcards: Wildcards = field(default_factory=dict)
    dynamic: str = "random"  # one of DYNAMIC_MODES
    seed_names: tuple[str, ...] = ()  # items aimed at a seed, in workflow_items order


@dataclass(frozen=True)
class Draws:
    """How a job's dynamic choices were drawn, to draw them again from recorded seeds."""

    templates: Mapping[str, Template]  # value name -> its text before the draw
    seed_from: str | None  # the seed value they derive from; None: made_of["choice_seed"]
    wildcards: Wildcards


@dataclass(frozen=True)
class Job:
    """One job: the values it sets in the workflow (text as sent, seeds as drawn)."""

    index: int  # 1-based, as users count
    values: Mapping[str, Any]
    drawn_seeds: frozenset[str] = field(default_factory=frozenset)
    # What made this job out of its batch entry, for the record: the variable, sweep / zip and
    # repeat values and the dynamic-prompt choices that expansion applied (empty for a plain entry).
    made_of: Mapping[str, Any] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)  # name -> JSON path it came from
    draws: Draws | None = None

    def where(self, name: str) -> str:
        """The JSON path a value came from, for messages."""
        return self.sources.get(name) or f"parameters.generic_prompts.{name}"


# --------------------------------------------------------------------------- variables


def substitute(text: str, words: Mapping[str, str]) -> str:
    """`$name` replaced by its word, for the names in `words` only (other `$` text stays)."""
    if not words or "$" not in text:
        return text
    return VARIABLE.sub(lambda m: words.get(m.group(1), m.group()), text)


def used_variables(entry: Entry, variables: Mapping[str, Sequence[str]]) -> list[str]:
    """The variables an entry's texts use, in the order they are defined."""
    used = {m.group(1) for _, text in entry.texts() if "$" in text for m in VARIABLE.finditer(text)}
    return [name for name in variables if name in used]


# --------------------------------------------------------------------------- counting


def count_jobs(expansion: Expansion) -> list[int]:
    """How many jobs each entry makes, computed without making them."""
    parsed = _Parsed(expansion)
    return [_entry_count(entry, expansion, parsed) for entry in expansion.entries]


def check_size(expansion: Expansion, limit: int) -> int:
    """The number of jobs; BadInput when it is over `limit`, saying where they come from."""
    counts = count_jobs(expansion)
    total = sum(counts)
    if total <= limit:
        return total
    biggest = max(range(len(counts)), key=counts.__getitem__)
    raise BadInput(
        expansion.file,
        "",
        f"this batch makes {total:,} jobs, more than --max-jobs allows ({limit:,}); "
        f"{expansion.entries[biggest].where} alone makes {counts[biggest]:,} "
        f"({_factors_text(expansion.entries[biggest], expansion, counts[biggest])}). "
        f"If that is what you want, run it with --max-jobs {total}",
    )


def _entry_count(entry: Entry, expansion: Expansion, parsed: _Parsed) -> int:
    used = used_variables(entry, expansion.variables)
    combinations = math.prod(len(expansion.variables[name]) for name in used)
    if expansion.dynamic != "all":
        return combinations * _cells(entry) * entry.repeat
    if not any(dynprompts.might_be_dynamic(word) for name in used for word in expansion.variables[name]):
        # Plain words do not change how many texts a template makes: count once.
        return combinations * _texts_count(entry, {}, parsed) * entry.repeat
    words = itertools.product(*(expansion.variables[name] for name in used))
    return sum(_texts_count(entry, dict(zip(used, chosen, strict=True)), parsed) for chosen in words) * entry.repeat


def _cells(entry: Entry) -> int:
    return math.prod(len(axis.values) for axis in entry.sweep) * (len(entry.zip[0].values) if entry.zip else 1)


def _texts_count(entry: Entry, words: Mapping[str, str], parsed: _Parsed) -> int:
    """The jobs one repeat of an entry makes with these words, with every dynamic text counted."""

    def texts(value: Any, where: str) -> int:
        return parsed.count(substitute(value, words), where) if isinstance(value, str) else 1

    fixed = math.prod(texts(value, entry.sources[name]) for name, value in entry.values.items())
    swept = math.prod(
        sum(texts(value, f"{axis.where}[{i}]") for i, value in enumerate(axis.values)) for axis in entry.sweep
    )
    rows = len(entry.zip[0].values) if entry.zip else 1
    zipped = sum(
        math.prod(texts(axis.values[row], f"{axis.where}[{row}]") for axis in entry.zip) for row in range(rows)
    )
    return fixed * swept * zipped


def _factors_text(entry: Entry, expansion: Expansion, total: int) -> str:
    factors = [(len(expansion.variables[name]), f"${name}") for name in used_variables(entry, expansion.variables)]
    factors += [(len(axis.values), shown_name(axis.name)) for axis in entry.sweep]
    factors += [(len(entry.zip[0].values), "zip rows")] if entry.zip else []
    factors += [(entry.repeat, "repeats")] if entry.repeat > 1 else []
    made = math.prod(size for size, _ in factors)
    text = " × ".join(f"{size:,} {what}" for size, what in factors)
    if total > made:  # "all" dynamic prompts
        text += f" × {total // made:,} texts" if total % made == 0 else " and their dynamic-prompt texts"
    return text or "its dynamic-prompt texts"


# --------------------------------------------------------------------------- expanding


def expand(expansion: Expansion, rng: random.Random) -> list[Job]:
    """Every job of the batch, numbered from 1 in the order of the module's docstring."""
    parsed = _Parsed(expansion)
    jobs: list[Job] = []
    for entry in expansion.entries:
        jobs += _entry_jobs(entry, expansion, rng, parsed, first=len(jobs) + 1)
    return jobs


def with_seeds(job: Job, seeds: Mapping[str, int], choice_seed: int | None) -> Job | None:
    """The job with these seeds (as an earlier run drew them) and its dynamic texts drawn again
    from them; None when they cannot be drawn again (no recorded choice_seed)."""
    values = {**job.values, **{name: seed for name, seed in seeds.items() if name in job.drawn_seeds}}
    if job.draws is None:
        return replace(job, values=values)
    base = values.get(job.draws.seed_from) if job.draws.seed_from else choice_seed
    if not isinstance(base, int):
        return None
    drawn, made = _draw_texts(job.draws, values, base)
    return replace(job, values=drawn, made_of={**job.made_of, **made})


def _entry_jobs(entry: Entry, expansion: Expansion, rng: random.Random, parsed: _Parsed, first: int) -> list[Job]:
    used = used_variables(entry, expansion.variables)
    random_names = _random_seed_names(entry, expansion.seed_names)
    # Drawn per repeat before anything else: with parameters.random_seed, an entry's seeds stay
    # the same when its word lists or sweep lists change.
    repeats = [_draw_seeds(random_names, expansion.dynamic, rng) for _ in range(entry.repeat)]
    jobs: list[Job] = []
    for chosen in itertools.product(*(expansion.variables[name] for name in used)):
        words = dict(zip(used, chosen, strict=True))
        for cell, sources, varied in _cells_of(entry):
            values = {name: substitute(v, words) if isinstance(v, str) else v for name, v in cell.items()}
            made = {"entry": entry.where, **({"variables": words} if words else {}), **varied}
            for number, (seeds, choice_seed) in enumerate(repeats, start=1):
                drawn = {name: seed for name, seed in seeds.items() if values.get(name) == RANDOM}
                seeded = {**values, **drawn}
                made_here = {**made, "repeat": number} if entry.repeat > 1 else made
                for final, dynamic, draws in _dynamic_texts(seeded, sources, expansion, parsed, choice_seed):
                    record = {**made_here, **dynamic}
                    jobs.append(
                        Job(
                            index=first + len(jobs),
                            values=final,
                            drawn_seeds=frozenset(drawn),
                            made_of=record if len(record) > 1 else {},  # a plain entry: nothing to say
                            sources=sources,
                            draws=draws,
                        )
                    )
    return jobs


def _cells_of(entry: Entry) -> Iterator[tuple[dict[str, Any], Mapping[str, str], dict[str, Any]]]:
    """(values, where each came from, what the sweep and zip set) of each sweep × zip cell."""
    rows = range(len(entry.zip[0].values)) if entry.zip else range(1)
    for swept in itertools.product(*(range(len(axis.values)) for axis in entry.sweep)):
        for row in rows:
            picked = [(axis, i) for axis, i in zip(entry.sweep, swept, strict=True)]
            picked += [(axis, row) for axis in entry.zip]
            if not picked:
                yield dict(entry.values), entry.sources, {}
                continue
            values = {**entry.values, **{axis.name: axis.values[i] for axis, i in picked}}
            sources = {**entry.sources, **{axis.name: f"{axis.where}[{i}]" for axis, i in picked}}
            varied: dict[str, Any] = {}
            if entry.sweep:
                varied["sweep"] = {axis.name: axis.values[i] for axis, i in zip(entry.sweep, swept, strict=True)}
            if entry.zip:
                varied["zip"] = {axis.name: axis.values[row] for axis in entry.zip}
            yield values, sources, varied


def _random_seed_names(entry: Entry, seed_names: Sequence[str]) -> list[str]:
    def has_random(name: str) -> bool:
        lists = [axis.values for axis in (*entry.sweep, *entry.zip) if axis.name == name]
        return entry.values.get(name) == RANDOM or any(RANDOM in values for values in lists)

    return [name for name in seed_names if has_random(name)]


def _draw_seeds(names: Sequence[str], dynamic: str, rng: random.Random) -> tuple[dict[str, int], int | None]:
    seeds = {name: rng.randrange(SEED_LIMIT) for name in names}
    return seeds, rng.randrange(SEED_LIMIT) if dynamic == "random" else None


def _dynamic_texts(
    values: dict[str, Any],
    sources: Mapping[str, str],
    expansion: Expansion,
    parsed: _Parsed,
    choice_seed: int | None,
) -> Iterator[tuple[dict[str, Any], dict[str, Any], Draws | None]]:
    """(values, what the draws add to made_of, how to draw again) of each job these values make."""
    if expansion.dynamic == "off":
        yield values, {}, None
        return
    values = dict(values)
    templates = {}
    for name, value in list(values.items()):
        if isinstance(value, str) and dynprompts.might_be_dynamic(value):
            template = parsed.template(value, sources.get(name, name))
            if template.is_static:
                values[name] = template.literal  # escapes only
            else:
                templates[name] = template
    if not templates:
        yield values, {}, None
    elif expansion.dynamic == "all":
        yield from _every_text(values, templates, expansion.wildcards, parsed)
    else:
        seed_from = next((n for n in expansion.seed_names if isinstance(values.get(n), int)), None)
        base = values[seed_from] if seed_from else choice_seed
        assert base is not None  # drawn in "random" mode
        draws = Draws(templates, seed_from, expansion.wildcards)
        drawn, made = _draw_texts(draws, values, base)
        yield drawn, made, draws


def _draw_texts(draws: Draws, values: Mapping[str, Any], base: int) -> tuple[dict[str, Any], dict[str, Any]]:
    drawn = dict(values)
    choices: dict[str, list[list[str]]] = {}
    for name, template in draws.templates.items():
        # One stream per value, so that editing one text does not change the draws of another.
        text, picks = dynprompts.draw(template, random.Random(f"{base}:{name}"), draws.wildcards)
        drawn[name] = text
        choices[name] = _picks_record(picks)
    made: dict[str, Any] = {"dynamic": choices}
    if draws.seed_from is None:
        made["choice_seed"] = base
    return drawn, made


def _every_text(
    values: dict[str, Any], templates: Mapping[str, Template], wildcards: Wildcards, parsed: _Parsed
) -> Iterator[tuple[dict[str, Any], dict[str, Any], None]]:
    each = [list(dynprompts.every_text(template, wildcards, parsed.texts_memo)) for template in templates.values()]
    for combination in itertools.product(*each):
        final = dict(values)
        choices = {}
        for name, (text, picks) in zip(templates, combination, strict=True):
            final[name] = text
            choices[name] = _picks_record(picks)
        yield final, {"dynamic": choices}, None


def _picks_record(picks: Sequence[Pick]) -> list[list[str]]:
    return [[pick.source, pick.chosen] for pick in picks]


class _Parsed:
    """Templates parsed once per distinct text during one expansion or count."""

    def __init__(self, expansion: Expansion) -> None:
        self._expansion = expansion
        self._templates: dict[str, Template] = {}
        self._counts: dict[str, int] = {}
        self.texts_memo: dict[dynprompts.Part, list[str]] = {}

    def template(self, text: str, where: str) -> Template:
        found = self._templates.get(text)
        if found is None:
            found = self._templates[text] = self._parse(text, where)
        return found

    def count(self, text: str, where: str) -> int:
        if not dynprompts.might_be_dynamic(text):
            return 1
        return dynprompts.count(self.template(text, where), self._expansion.wildcards, self._counts)

    def _parse(self, text: str, where: str) -> Template:
        try:
            template = dynprompts.parse(text)
        except dynprompts.PromptSyntaxError as e:
            # Texts were checked when the batch was loaded; only a variable's word can get here.
            raise BadInput(self._expansion.file, where, f"after putting in the variables' words: {e}") from None
        missing = [name for name in dynprompts.wildcard_names(template) if name not in self._expansion.wildcards]
        if missing:
            raise BadInput(
                self._expansion.file,
                where,
                f"__{shortened(missing[0])}__ appears only once the variables' words are put in, and wildcard files are read "
                "before that: write it in the prompt or in the word list itself",
            )
        return template
