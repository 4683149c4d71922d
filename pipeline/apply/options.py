"""What :func:`~pipeline.apply.apply_folder` is asked to do besides inference, and what it did."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError

#: Output formats of ``fmt`` (None: each input's own).
OUTPUT_FORMATS = ("dicom", "png", "tiff", "nifti")


@dataclass(frozen=True)
class ApplyOptions:
    """How :func:`~pipeline.apply.apply_folder` works through a folder.

    The network's tiles, batch and device are its :class:`~pipeline.config.InferenceConfig`.

    fmt : output format (``dicom``, ``png``, ``tiff``, ``nifti``, any case); None: as each input.
    overwrite : redo finished outputs instead of skipping them.
    num_parts, part_id : handle files ``i`` with ``i % num_parts == part_id``; None: from
        torchrun's WORLD_SIZE/RANK, else the whole folder.
    progress, report : show a progress bar; write the report.
    """

    fmt: str | None = None
    overwrite: bool = False
    num_parts: int | None = None
    part_id: int | None = None
    progress: bool = True
    report: bool = True

    def __post_init__(self) -> None:
        if self.fmt is not None:
            if self.fmt.lower() not in OUTPUT_FORMATS:
                raise PipelineError(
                    f"output format {self.fmt!r} is not one of {', '.join(OUTPUT_FORMATS)}"
                )
            object.__setattr__(self, "fmt", self.fmt.lower())


@dataclass(frozen=True)
class ApplyResult:
    """What :func:`~pipeline.apply.apply_folder` did.

    Attributes
    ----------
    output_dir: the output folder.
    done, skipped, failed: files denoised, found finished, failed (this process's part).
    manifest, failures: the CSV files this process wrote (``*.part-K.csv`` for a part).
    report: report.html, or None when no report was written.
    part_id, num_parts: which part of the file list this process handled.
    seconds: wall time.
    empty: the input folder held no image at all (a warning was logged; exit status 1).
    """

    output_dir: Path
    done: int
    skipped: int
    failed: int
    manifest: Path
    failures: Path
    report: Path | None = None
    part_id: int = 0
    num_parts: int = 1
    seconds: float = 0.0
    empty: bool = False

    @property
    def exit_code(self) -> int:
        """1 when any file failed or the input folder held no image, else 0."""
        return 1 if self.failed or self.empty else 0

    def summary(self) -> str:
        """One line: counts, time, part."""
        part = f" (part {self.part_id} of {self.num_parts})" if self.num_parts > 1 else ""
        return (
            f"denoised {self.done} files, skipped {self.skipped} already finished, "
            f"{self.failed} failed in {self.seconds:.1f} s{part} -> {self.output_dir}"
        )
