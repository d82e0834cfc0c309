"""The gallery page: one self-contained HTML file beside the outputs (styles and script inline,
nothing fetched from elsewhere), opened from disk.

One card per job: its outputs (images open the full file; video and audio play in place; the
server's file names when saving is off), the values that vary between jobs, what expansion
made it of, its server, time taken and, for a failed job, the error. The values every job
shares are shown once, at the top, with the grids and sheets made beside the page. A small
script filters the cards by text or status and sorts them; it keeps its settings in the
address, so a reload shows the same view.

Rendering is incremental: each card is rendered once per change of its job, and the page is
written card by card, so rewriting the page of a 2,000-job batch is writing out strings already
made, never rendering it all again nor holding it whole in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from html import escape
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..journal import Status
from ..results import CANCELLED, FAILED, OK, JobResult
from .files import file_name, kind_of
from .records import QUEUED, WAITING, is_final

GENERATOR = "comfyui-batch gallery"  # marks a page as ours: only such a page is ever replaced
STATUS_WORDS = {OK: "ok", FAILED: "failed", CANCELLED: "cancelled", QUEUED: "queued", WAITING: "waiting"}


def _asset(name: str) -> str:
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class PageHeader:
    """What the page says about the run as a whole."""

    batch_name: str  # the batch file's name
    workflow_name: str
    manifest_name: str
    running: bool
    interrupted: bool = False
    updated: datetime | None = None
    made: tuple[str, ...] = ()  # grids and sheets beside the page, by name


class Page:
    """The page of one run, kept up to date job by job. Not thread-safe: one writer owns it."""

    def __init__(self, jobs: Iterable[JobResult], saved: bool) -> None:
        self._saved = saved
        self._jobs: dict[int, JobResult] = {result.job.index: result for result in jobs}
        self._cards: dict[int, str] = {}
        self._varying = varying_names(self._jobs.values())
        self._running = True

    def update(self, result: JobResult) -> None:
        index = result.job.index
        previous = self._jobs.get(index)
        self._cards.pop(index, None)
        if previous is not None and previous.job.values == result.job.values:
            result = replace(result, job=previous.job)  # one copy of the values per job, however long the run
            self._jobs[index] = result
            return
        self._jobs[index] = result
        varying = varying_names(self._jobs.values())
        if varying != self._varying:
            self._varying = varying
            self._cards.clear()

    @property
    def jobs(self) -> list[JobResult]:
        return [self._jobs[index] for index in sorted(self._jobs)]

    def render(self, header: PageHeader) -> str:
        return "".join(self.pieces(header))

    def pieces(self, header: PageHeader) -> Iterator[str]:
        """The page in pieces, to be written one after the other: the whole page is never held
        as one string, however many jobs it shows."""
        if header.running != self._running:
            self._running = header.running  # "waiting" becomes "not run" once the run is over
            for index, result in self._jobs.items():
                if result.status == WAITING:
                    self._cards.pop(index, None)
        ordered = sorted(self._jobs)
        yield _HEAD.format(
            generator=GENERATOR,
            title=escape(header.batch_name),
            state="running" if header.running else "finished",
            css=_CSS,
            summary=escape(summary_line(self._jobs.values(), header)),
            about=_about(header),
            common=_common(self._jobs[ordered[0]].job.values if ordered else {}, self._varying),
            made=_made(header.made),
            statuses="".join(f'<option value="{s}">{w}</option>' for s, w in STATUS_WORDS.items()),
            total=len(ordered),
        )
        for index in ordered:
            card = self._cards.get(index)
            if card is None:
                card = self._cards[index] = render_card(self._jobs[index], self._varying, self._saved, self._running)
            yield card + "\n"
        yield _TAIL.format(script=_SCRIPT)


def varying_names(jobs: Iterable[JobResult]) -> tuple[str, ...]:
    """The value names that differ between jobs (or that some jobs lack), in order of first use."""
    seen: dict[str, set[str]] = {}
    uses: dict[str, int] = {}
    count = 0
    for result in jobs:
        count += 1
        for name, value in result.job.values.items():
            seen.setdefault(name, set()).add(json.dumps(value, sort_keys=True, default=str))
            uses[name] = uses.get(name, 0) + 1
    return tuple(name for name, values in seen.items() if len(values) > 1 or uses[name] < count)


def summary_line(jobs: Iterable[JobResult], header: PageHeader) -> str:
    counts: dict[str, int] = {}
    for result in jobs:
        counts[result.status] = counts.get(result.status, 0) + 1
    parts = [f"{counts[s]} {_status_word(s, header.running)}" for s in STATUS_WORDS if counts.get(s)]
    state = "running" if header.running else ("interrupted" if header.interrupted else "finished")
    when = f" {header.updated:%Y-%m-%d %H:%M:%S}" if header.updated else ""
    return f"{' · '.join(parts) or 'no jobs'} — {state}, updated{when}"


def _status_word(status: Status, running: bool) -> str:
    return "not run" if status == WAITING and not running else STATUS_WORDS[status]


def render_card(result: JobResult, varying: tuple[str, ...], saved: bool, running: bool) -> str:
    job, status = result.job, result.status
    seconds = _seconds(result)
    facts = [f'<span class="status">{_status_word(status, running)}</span>']
    if result.server:
        facts.append(f'<span class="server">{escape(result.server)}</span>')
    if seconds is not None:
        facts.append(f'<span class="seconds">{_duration(seconds)}</span>')
    data = f'data-job="{job.index}" data-status="{status}"'
    if result.finished_at:
        data += f' data-finished="{result.finished_at:.3f}"'
    if seconds is not None:
        data += f' data-seconds="{seconds:.3f}"'
    parts = [
        f'<article class="job s-{status}" id="job-{job.index}" {data}>',
        f'<header><a class="number" href="#job-{job.index}">#{job.index}</a> {" ".join(facts)}</header>',
    ]
    if result.files:
        parts.append('<div class="media">' + "".join(_file(f, job.index, saved) for f in result.files) + "</div>")
    if result.error:
        parts.append(f'<pre class="error">{escape(result.error)}</pre>')
    shown = [name for name in varying if name in job.values]
    if shown:
        parts.append("<dl>" + "".join(_value(name, job.values[name]) for name in shown) + "</dl>")
    if job.made_of:
        made = " · ".join(f"{escape(name)}: {escape(_made_text(value))}" for name, value in job.made_of.items())
        parts.append(f'<p class="made-of">made of {made}</p>')
    parts.append("</article>")
    return "".join(parts)


def _seconds(result: JobResult) -> float | None:
    """Time taken, when the records tell it."""
    known = is_final(result) and result.finished_at and (result.started_at or result.queued_at)
    return result.seconds if known else None


def _file(recorded: str, job: int, saved: bool) -> str:
    name = file_name(recorded)
    if not saved:
        return f'<span class="file server-file" title="on the server">{escape(recorded)}</span>'
    href = escape(quote(name))
    kind = kind_of(name)
    if kind == "image":
        alt = escape(f"job {job}: {name}")
        return f'<a class="thumb" href="{href}" target="_blank"><img src="{href}" alt="{alt}" loading="lazy" decoding="async"></a>'
    if kind == "video":
        return f'<video controls preload="metadata" src="{href}" title="{escape(name)}"></video>'
    if kind == "audio":
        return f'<figure class="audio"><audio controls preload="none" src="{href}"></audio><figcaption><a href="{href}">{escape(name)}</a></figcaption></figure>'
    return f'<a class="file" href="{href}" target="_blank">{escape(name)}</a>'


def _value(name: str, value: Any) -> str:
    text = _text(value)
    long = ' class="long"' if len(text) > 40 else ""
    return f"<dt>{escape(name)}</dt><dd{long}>{escape(text)}</dd>"


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if type(value) in (int, float):  # most values: the same text as JSON's, faster
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def _made_text(value: Any) -> str:
    """`cfg 6, sampler_name euler` for what a sweep set; other values as `_text` writes them."""
    if isinstance(value, Mapping):
        return ", ".join(f"{name} {_text(v)}" for name, v in value.items())
    return _text(value)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def _about(header: PageHeader) -> str:
    manifest = escape(quote(header.manifest_name))
    return f'workflow {escape(header.workflow_name)} · record: <a href="{manifest}">{escape(header.manifest_name)}</a>'


def _common(values: Mapping[str, Any], varying: tuple[str, ...]) -> str:
    shared = [name for name in values if name not in varying]
    if not shared:
        return ""
    rows = "".join(_value(name, values[name]) for name in shared)
    return f'<details class="common"><summary>the same for every job ({len(shared)})</summary><dl>{rows}</dl></details>'


def _made(names: tuple[str, ...]) -> str:
    if not names:
        return ""
    links = "".join(
        f'<a class="thumb" href="{escape(quote(n))}" target="_blank"><img src="{escape(quote(n))}" alt="{escape(n)}" loading="lazy"><span>{escape(n)}</span></a>'
        for n in names
    )
    return f'<section class="made"><h2>Grids and sheets</h2><div class="media">{links}</div></section>'


def is_our_page(path: Path) -> bool:
    """True when `path` is a page this tool wrote (the only kind it ever replaces)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return f'<meta name="generator" content="{GENERATOR}">' in handle.read(2048)
    except OSError:
        return False


_CSS = _asset("gallery.css")
_SCRIPT = _asset("gallery.js")
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="generator" content="{generator}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
{css}</style>
</head>
<body data-state="{state}">
<header class="top">
<h1>{title}</h1>
<p class="summary">{summary}</p>
<p class="about">{about}</p>
{common}
{made}
<form class="controls" role="search" onsubmit="return false">
<input type="search" id="filter" placeholder="filter: words of a prompt, a seed, an error…" aria-label="filter">
<select id="status" aria-label="status"><option value="">every status</option>{statuses}</select>
<select id="sort" aria-label="sort">
<option value="job">by job</option>
<option value="finished">by time finished, latest first</option>
<option value="seconds">by time taken, longest first</option>
<option value="status">by status, failed first</option>
</select>
<output id="shown">{total} jobs</output>
</form>
</header>
<main id="jobs">
{cards}</main>
<script>
{script}</script>
</body>
</html>
"""
_HEAD, _TAIL = _PAGE.split("{cards}")  # the cards go between, written one by one
