"""What a run shows of itself as it goes: the gallery page, rewritten as jobs finish; each grid,
built as soon as its cells exist; the contact sheet, at the end.

The run hands every manifest record to `Presenter.record` (on the scheduler's thread): that
appends it to the manifest and notes the job's new state, nothing more. A background thread
does the rest, at most once per `interval`: it renders the page (only the cards that changed),
replaces the file in one step, and builds the grids that have become complete. `finish` does
a last pass on the caller's thread, builds what is left, and returns what to tell the user.
Problems on the way (a full disk, an unreadable image) never stop the batch: they are told at
the end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path

from PIL import Image

from ..batch import Batch, Job, is_seed
from ..errors import CannotSave
from ..journal import Record, read_journal
from ..progress import Reporter
from ..results import OK, JobResult
from .draw import TooLarge, save_png
from .files import file_name, free_name, is_image, write_atomically
from .gallery import Page, PageHeader, is_our_page
from .grids import GridPlan, draw_grid, plan_grids
from .gridspec import GridSpec
from .options import PresentOptions
from .records import History, is_final, job_record, made_record, read_history, waiting
from .sheet import draw_sheet, entries

IDLE_WAIT = 5.0  # seconds: the writer's longest sleep before it checks whether it should stop
JOIN_TIMEOUT = 600.0  # seconds: the longest `finish` waits for a grid being built to be done
SHEET_MAX_SIDE = 8192


@dataclass(frozen=True)
class Scene:
    """What the presentation knows of the batch."""

    batch_name: str  # the batch file's name; the stem names what we write
    stem: str
    workflow_name: str
    folder: Path  # the output directory: outputs, manifest, and what we write
    manifest_name: str
    saved: bool  # outputs are saved there (else the records hold the server's names)
    seed_names: tuple[str, ...] = ()  # the items that are seeds, which label the contact sheet
    grid: GridSpec | None = None

    def on_disk(self, recorded: str) -> Path:
        return self.folder / file_name(recorded)


@dataclass
class _Made:
    """Files made so far, by name, with what they show."""

    grids: dict[int, str] = field(default_factory=dict)  # grid number -> file name
    failed: set[int] = field(default_factory=set)  # grids that could not be made: tried again at the end
    sheet: str | None = None
    ours: set[str] = field(default_factory=set)  # every name we may replace

    @property
    def names(self) -> tuple[str, ...]:
        return (*[self.grids[n] for n in sorted(self.grids)], *([self.sheet] if self.sheet else []))


def wanted(options: PresentOptions, grid: GridSpec | None) -> bool:
    """Whether a run has anything to show: otherwise records only pass through."""
    return options.gallery or grid is not None or options.contact_sheet


class Presenter:
    def __init__(
        self,
        scene: Scene,
        options: PresentOptions,
        jobs: Iterable[JobResult],
        append: Callable[[Record], None],
        ours: Collection[str] = (),
        clock: Callable[[], datetime] = datetime.now,
    ) -> None:
        self._scene = scene
        self._clock = clock
        self._options = options
        self._append = append
        self._page = Page(jobs, scene.saved)
        self._made = _Made(ours=set(ours))
        self._page_path: Path | None = None
        self._problems: list[str] = []
        self._lock = threading.Lock()  # guards _news and _dirty, shared with the scheduler's thread
        self._wake = threading.Condition(self._lock)
        self._news: dict[int, JobResult] = {}
        self._dirty = False
        self._stopping = False
        self._working = threading.Lock()  # one pass at a time: the writer's, or finish's
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return wanted(self._options, self._scene.grid)

    # --- on the scheduler's thread ----------------------------------------------------------

    def start(self, reporter: Reporter) -> None:
        """Writes the first page and starts the writer, which builds the grids already complete."""
        if not self.active:
            return
        if not self._scene.saved and (self._scene.grid or self._options.contact_sheet):
            reporter.warning("grids and contact sheets are made from saved images; saving is off, so none is made")
        if self._options.gallery:
            path = self._scene.folder / f"{self._scene.stem}.html"
            if path.exists() and not is_our_page(path):
                reporter.warning(f"not writing the gallery: {path} exists and is not a gallery page of ours")
            else:
                self._page_path = path
                self._append(made_record("gallery", str(path)))
                reporter.note(f"gallery: {path}")
        with self._working:
            self._pass(running=True, build=False)
        self._dirty = True  # the writer's first pass builds the grids an earlier run completed
        self._thread = threading.Thread(target=self._loop, name="gallery", daemon=True)
        self._thread.start()

    def record(self, record: Record) -> None:
        """Appends `record` to the journal, and tells the writer when it is news about a job."""
        self._append(record)
        result = job_record(record) if self.active else None
        if result is None:
            return
        with self._wake:
            self._news[result.job.index] = result
            self._dirty = True
            self._wake.notify()

    def finish(self, interrupted: bool, reporter: Reporter) -> None:
        """The last page, the grids not yet built, the contact sheet; tells what was made."""
        if not self.active:
            return
        self.stop()
        if not self._working.acquire(timeout=JOIN_TIMEOUT):
            reporter.warning("the gallery writer is still busy; its last update is skipped")
            return
        try:
            self._pass(running=False, build=True, interrupted=interrupted, final=True)
        finally:
            self._working.release()
        for name in self._made.names:
            reporter.note(f"made {self._scene.folder / name}")
        for problem in self._problems:
            reporter.warning(problem)

    def stop(self) -> None:
        """Stops the writer (without a last pass); safe to call more than once."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT)

    # --- on the writer's thread -------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._dirty and not self._stopping:
                    self._wake.wait(IDLE_WAIT)
                if self._stopping:
                    return
                self._dirty = False
            with self._working:
                self._pass(running=True, build=True)
            with self._wake:
                # Throttle: later news waits for the next pass; a stop does not.
                self._wake.wait_for(lambda: self._stopping, self._options.interval)

    def _pass(self, running: bool, build: bool, interrupted: bool = False, final: bool = False) -> None:
        with self._wake:
            news, self._news = self._news, {}
        for result in news.values():
            self._page.update(result)
        if build and self._scene.saved:
            self._build_grids(final)
            if final and self._options.contact_sheet:
                self._build_sheet()
        if self._page_path is not None:
            header = PageHeader(
                self._scene.batch_name,
                self._scene.workflow_name,
                self._scene.manifest_name,
                running=running,
                interrupted=interrupted,
                updated=self._clock(),
                made=self._made.names,
            )
            self._attempt("the gallery page was not updated", partial(_write_page, self._page_path, self._page, header))

    def _build_grids(self, final: bool) -> None:
        spec = self._scene.grid
        if spec is None:
            return
        for plan in plan_grids(spec, self._page.jobs):
            if plan.number in self._made.grids or not (
                final or (plan.complete and plan.number not in self._made.failed)
            ):
                continue
            if not self._attempt(f"grid {plan.title!r} not made", partial(self._build_grid, plan)):
                self._made.failed.add(plan.number)

    def _build_grid(self, plan: GridPlan) -> None:
        target = free_name(self._scene.folder, plan.file_name(self._scene.stem), self._made.ours)
        drawn = draw_grid(plan, self._scene.on_disk, is_image)
        save_png(drawn.image, target, f"grid of {self._scene.batch_name}: {plan.title}")
        self._made.grids[plan.number] = target.name
        self._made.ours.add(target.name)
        self._append(made_record("grid", str(target), axes=plan.spec.axes, z=plan.z))

    def _build_sheet(self) -> None:
        found = entries(self._page.jobs, self._scene.seed_names, is_image)
        if not found:
            self._problems.append("no contact sheet: the run has no saved images")
            return

        def build() -> None:
            target = free_name(self._scene.folder, f"{self._scene.stem}.contact.png", self._made.ours)
            sheet = draw_sheet(found, self._scene.on_disk, SHEET_MAX_SIDE)
            save_png(sheet, target, f"contact sheet of {self._scene.batch_name}: {len(found)} images")
            self._made.sheet = target.name
            self._made.ours.add(target.name)
            self._append(made_record("contact_sheet", str(target), images=len(found)))

        self._attempt("contact sheet not made", build)

    def _attempt(self, what: str, work: Callable[[], None]) -> bool:
        """Runs `work`; a problem with a file is noted for the end of the run, not raised."""
        try:
            work()
            return True
        except (OSError, CannotSave, TooLarge, Image.DecompressionBombError) as e:
            problem = f"{what}: {getattr(e, 'strerror', None) or e}"
            if problem not in self._problems:
                self._problems.append(problem)
            return False


def _write_page(path: Path, page: Page, header: PageHeader) -> None:
    def write(temp: Path) -> None:
        with open(temp, "w", encoding="utf-8") as handle:
            handle.writelines(page.pieces(header))

    write_atomically(path, write)


# --- set-up from a run ---------------------------------------------------------------------


def open_presenter(
    batch: Batch,
    grid: GridSpec | None,
    options: PresentOptions,
    done: Sequence[tuple[Job, Sequence[str]]],
    to_run: Sequence[Job],
    manifest: Path,
    append: Callable[[Record], None],
    resumed: bool = False,
) -> Presenter:
    """The presenter of a run: `done` are the jobs an earlier run finished (with their files),
    `to_run` those this run runs or looks up. A resumed run reads the manifest for the rest:
    what the earlier runs recorded of their jobs, and the files made for them."""
    scene = Scene(
        batch_name=batch.path.name,
        stem=batch.path.stem,
        workflow_name=batch.workflow_path.name,
        folder=batch.save.output_directory,
        manifest_name=manifest.name,
        saved=batch.save.enabled,
        seed_names=tuple(name for name, spec in batch.items.items() if is_seed(name, spec)),
        grid=grid,
    )
    if not wanted(options, grid):
        return Presenter(scene, options, [], append)
    history = _history(manifest, str(batch.path.resolve())) if resumed else History({}, frozenset())
    jobs = [_earlier(job, files, history.jobs.get(job.index)) for job, files in done]
    jobs += [waiting(job) for job in to_run]
    return Presenter(scene, options, sorted(jobs, key=lambda r: r.job.index), append, history.made)


def _history(manifest: Path, batch_file: str) -> History:
    try:
        return read_history(read_journal(manifest), batch_file)
    except OSError:
        return History({}, frozenset())


def _earlier(job: Job, files: Sequence[str], record: JobResult | None) -> JobResult:
    """A job an earlier run finished, as its record tells it (with what expansion made it of)."""
    if record is not None and is_final(record) and record.job.values == job.values:
        return replace(record, job=job)
    return JobResult(job, OK, files=tuple(files))
