"""Planning a folder run: which files, their output names, which part of the list, what is finished.

Outputs mirror the input tree. ``x.jpg`` -> ``x.png``; a DICOM without a suffix gets
``.dcm``; when two inputs would get one output name (``x.jpg`` beside ``x.png``), the one
whose suffix changes is named ``x_jpg.png``; an output that would be the folder of other
outputs (a multi-page ``a.tif`` beside an input folder ``a.frames/``) is named ``a_tif.frames``;
an input folder ``report_views/`` at the top is written to ``report_views.input/``
(``OUT/report_views/`` holds the report's images, and the report clears it); a clash that remains
(output names are compared ignoring letter case) is a failure. A file with several frames
gets the folder ``<name>.frames/`` (except a NIfTI volume). The sorted file
list is split disjointly: file ``i`` goes to part ``i % num_parts``.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.distributed import torchrun_info
from pipeline.errors import PipelineError, given_path
from pipeline.ingest.folder import scan_folder
from pipeline.io import SUPPORTED_SUFFIXES, default_output_format, detect_format, output_suffix
from pipeline.records import PARTIAL_TAG
from pipeline.text import path_text

FRAMES_SUFFIX = ".frames"
#: Top-level folder of OUT that holds the report's images (the report clears it on each run).
REPORT_VIEWS = "report_views"
#: Top-level folders of OUT that hold the report; input folders of these names are written
#: to ``<name>.input/`` instead, so a report never replaces or deletes an output.
RESERVED_FOLDERS = frozenset({REPORT_VIEWS})
INPUT_FOLDER_TAG = ".input"


@dataclass(frozen=True)
class Job:
    """One input file, where its output goes, and why it cannot be read (if known already)."""

    source: Path
    target: Path
    frames_dir: Path
    fmt: str
    problem: str | None = None

    @property
    def finals(self) -> tuple[Path, Path]:
        """Both possible final outputs: a single file, or a frames folder."""
        return self.target, self.frames_dir


def is_within(path: Path, root: Path) -> bool:
    """Whether `path` is `root` or lies under it (no resolving)."""
    return path == root or root in path.parents


def check_folders(input_dir: str | Path, output_dir: str | Path) -> tuple[Path, Path]:
    """Resolved (input, output) folders.

    PipelineError when they overlap, IN is missing or either is given as an empty string.
    """
    given_path(input_dir, "the input folder (-i)")
    given_path(output_dir, "the output folder (-o)")
    source, dest = Path(input_dir).resolve(), Path(output_dir).resolve()
    if not source.is_dir():
        raise PipelineError(
            f"input folder not found: {input_dir} (give the folder that holds the scans)"
        )
    if is_within(dest, source):
        raise PipelineError(
            f"output folder {output_dir} is "
            f"{'the input folder' if dest == source else 'inside the input folder'} {input_dir}: "
            "choose an output folder outside it (inputs are never modified)"
        )
    if is_within(source, dest):
        raise PipelineError(
            f"input folder {input_dir} is inside the output folder {output_dir}: choose another "
            "output folder"
        )
    if dest.exists() and not dest.is_dir():
        raise PipelineError(f"output {output_dir} is a file, not a folder")
    return source, dest


def resolve_part(
    num_parts: int | None = None, part_id: int | None = None, env: Mapping[str, str] | None = None
) -> tuple[int, int, bool]:
    """(num_parts, part_id, from_torchrun) of this run.

    Explicit values, else torchrun's WORLD_SIZE/RANK, else (1, 0).
    """
    info = torchrun_info(env)
    from_env = num_parts is None and part_id is None and info.launched
    if from_env:
        num_parts, part_id = info.world, info.rank
    num_parts = 1 if num_parts is None else int(num_parts)
    part_id = 0 if part_id is None else int(part_id)
    if num_parts < 1 or not 0 <= part_id < num_parts:
        raise PipelineError(
            f"part {part_id} of {num_parts} does not exist: use --num-parts P >= 1 and 0 <= "
            "--part-id < P"
        )
    return num_parts, part_id, from_env


def strip_suffix(name: str) -> str:
    """`name` without a supported image suffix (names of suffix-less DICOMs are kept whole)."""
    lower = name.lower()
    for suffix in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _output_format(source: Path, fmt: str | None) -> str:
    if fmt is not None:
        return fmt
    try:
        return default_output_format(detect_format(source) or "png")
    except OSError:
        return "png"  # unreadable: the read fails and names the reason


def _make_job(
    source: Path,
    input_dir: Path,
    output_dir: Path,
    fmt: str | None,
    problem: str | None,
    tag: str = "",
) -> Job:
    rel = source.relative_to(input_dir)
    out_fmt = _output_format(source, fmt)
    base = strip_suffix(rel.name) + tag
    folders = list(rel.parts[:-1])
    if folders and folders[0] in RESERVED_FOLDERS:  # the report's images live there
        folders[0] += INPUT_FOLDER_TAG
    parent = output_dir.joinpath(*folders)
    return Job(
        source,
        parent / (base + output_suffix(out_fmt, source)),
        parent / (base + FRAMES_SUFFIX),
        out_fmt,
        problem,
    )


def _suffix_tag(source: Path) -> str:
    """``_jpg`` for ``x.jpg``: tells apart inputs that would share an output name."""
    suffix = source.name[len(strip_suffix(source.name)) :]
    return "_" + (suffix.lstrip(".").replace(".", "_").lower() or "noext")


def _keeps_suffix(job: Job) -> bool:
    """Whether the output name ends like the source name (``x.png`` -> ``x.png``)."""
    suffix = job.target.name[len(strip_suffix(job.target.name)) :]
    return job.source.name.lower().endswith(suffix.lower())


def _name_key(path: Path) -> str:
    """`path` as a case-insensitive volume compares it (``a.png`` and ``A.PNG`` are one file)."""
    return str(path).casefold()


def _disambiguate(jobs: list[Job], input_dir: Path, output_dir: Path, fmt: str | None) -> list[Job]:
    """Rename outputs claimed by several inputs; a clash that remains is a failure.

    Output names are compared ignoring letter case: on a case-insensitive volume (macOS,
    Windows, many shares) ``a.png`` and ``A.png`` are one file.
    """
    counts = Counter(_name_key(job.target) for job in jobs)
    renamed = [
        _make_job(job.source, input_dir, output_dir, fmt, job.problem, _suffix_tag(job.source))
        if counts[_name_key(job.target)] > 1 and not _keeps_suffix(job)
        else job
        for job in jobs
    ]
    folders = _output_folders(renamed, output_dir)
    renamed = [
        _make_job(job.source, input_dir, output_dir, fmt, job.problem, _suffix_tag(job.source))
        if folders.keys() & set(job.finals)
        else job
        for job in renamed
    ]
    folders = _output_folders(renamed, output_dir)
    first: dict[str, Job] = {}
    result = []
    for job in renamed:
        owner = first.setdefault(_name_key(job.target), job)
        if job.problem is None and owner.source != job.source:
            job = replace(job, problem=_clash_reason(job, owner))
        elif job.problem is None and folders.keys() & set(job.finals):
            clash = next(iter(folders.keys() & set(job.finals)))
            job = replace(
                job,
                problem=f"{job.source}: its output {clash.name} is the folder of the output of "
                f"{folders[clash]}; rename one of them",
            )
        result.append(job)
    return result


def _clash_reason(job: Job, owner: Job) -> str:
    """Why `job` is not written: its output name is that of `owner`'s, up to letter case."""
    if job.target == owner.target:
        return (
            f"{job.source}: its output name {job.target.name} is also that of {owner.source}; "
            "rename one of them"
        )
    return (
        f"{job.source}: its output name {job.target.name} differs only in letter case from "
        f"{owner.target.name}, the output of {owner.source} (one file on case-insensitive disks); "
        "rename one of them"
    )


def _output_folders(jobs: Sequence[Job], output_dir: Path) -> dict[Path, Path]:
    """Every folder under `output_dir` that holds some job's output, and one such job's source.

    A job whose own output (file or frames folder) is one of these would replace, or be
    written inside, another input's output: a multi-page ``a.tif`` beside an input folder
    ``a.frames/``.
    """
    folders: dict[Path, Path] = {}
    for job in jobs:
        for parent in job.target.parents:
            if parent == output_dir or output_dir not in parent.parents:
                break
            folders.setdefault(parent, job.source)
    return folders


def plan_jobs(input_dir: Path, output_dir: Path, fmt: str | None = None) -> list[Job]:
    """Every candidate file under `input_dir` (sorted) with its output paths."""
    scan = scan_folder(input_dir)
    problems = {f.path: f.reason for f in scan.failures}
    sources = sorted([*scan.files, *problems], key=lambda p: p.relative_to(input_dir).parts)
    jobs = [_make_job(p, input_dir, output_dir, fmt, problems.get(p)) for p in sources]
    return _disambiguate(jobs, input_dir, output_dir, fmt)


def finished_output(job: Job) -> Path | None:
    """The complete output of `job` under its final name, if there is one."""
    try:
        if job.target.is_file() and not job.target.is_symlink():
            return job.target
        if job.frames_dir.is_dir() and not job.frames_dir.is_symlink():
            return job.frames_dir
    except OSError:  # a path longer than the system allows: never written
        return None
    return None


def split_finished(
    jobs: Sequence[Job],
    overwrite: bool,
    output_dir: Path,
    recorded: Mapping[str, Mapping[str, Any]],
    model_sha: str,
    input_sha: Callable[[Path], str],
) -> tuple[list[Job], list[Job]]:
    """(to do, already finished) — everything is to do with `overwrite`.

    Finished means recorded as finished by this tool: the output exists and `recorded`
    (manifest rows by input text) names it for this input, with the input's current
    SHA-256 (`input_sha`) and this model. An output the manifest gives to this input but
    for other contents (or by an older version that recorded no hash) is redone. A file
    under an output's name that no row gives to this input was not written by this tool:
    the job becomes a failure naming the clash, and the file is left as it is.
    """
    if overwrite:
        return list(jobs), []
    todo, finished = [], []
    for job in jobs:
        existing = finished_output(job) if job.problem is None else None
        if existing is None:
            todo.append(job)
            continue
        row = recorded.get(path_text(job.source)) or {}
        ours = row.get("output") == path_text(existing.relative_to(output_dir).as_posix())
        if not ours:
            todo.append(
                replace(
                    job,
                    problem=(
                        f"{job.source}: {existing.name} already exists in the output folder, and "
                        "no manifest row says this tool wrote it from this input; move it away, "
                        "or rerun with --overwrite to replace it"
                    ),
                )
            )
        elif row.get("model_sha256") == model_sha and row.get("input_sha256") == input_sha(
            job.source
        ):
            finished.append(job)
        else:
            todo.append(job)  # this tool's output of other input contents: redone
    return todo, finished


def stale_temporaries(jobs: Sequence[Job]) -> list[Path]:
    """Temporary outputs of `jobs` left by killed runs (one listing per folder)."""
    names: dict[Path, set[str]] = {}
    for job in jobs:
        for final in job.finals:
            names.setdefault(final.parent, set()).add(final.name)
    stale = []
    for folder, owned in names.items():
        try:
            if not folder.is_dir() or folder.is_symlink():
                continue
            entries = list(os.scandir(folder))
        except OSError:  # e.g. a path longer than the system allows: nothing written there
            continue
        for entry in entries:
            temporary = entry.name.startswith(".") and PARTIAL_TAG in entry.name
            if (
                temporary
                and entry.name[1 : entry.name.rindex(PARTIAL_TAG)] in owned
                and not _writer_alive(entry.name)
            ):
                stale.append(Path(entry.path))
    return stale


def _writer_alive(name: str) -> bool:
    """Whether the process whose id ends the temporary name `name` still runs (on this host).

    Another run's live temporary file must not be deleted (two runs on one OUT).
    """
    pid_text = name[name.rindex(PARTIAL_TAG) + len(PARTIAL_TAG) :]
    if not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except PermissionError:  # it exists but belongs to another user
        return True
    except (ProcessLookupError, OverflowError):
        return False
    return True
