"""Fuzz campaign against ``denoise apply``: generated hostile inputs, checked promises.

Every case is a file (or a run setting) made from the shared DICOM samples and small
synthetic PNG, JPEG, TIFF and NIfTI images, then damaged: header byte flips, truncations,
tag edits (sizes, bits, photometric, transfer syntax, frames, rescale), raster and NIfTI
header edits, hostile names; valid variants (LZW/Deflate/PackBits TIFF, big-endian DICOM,
JPEG Baseline DICOM, NIfTI scl_slope 0 or NaN) and invalid ones (a cut JPEG frame, an
infinite scl_slope, a UID running into the patient module); symbolic links inside and out
of IN, and paths over PATH_MAX. File cases are run in batches through the real command
(``python -m pipeline apply``, a subprocess with its own empty HOME and TMPDIR); run
cases (checkpoints, output folders, configs, concurrent and killed runs) run alone. After
each run the promises of the README section "What `apply` guarantees" are checked:

- exit status 0 (no failures), 1 (some files failed) or 2 (a user error), never a traceback;
- every input has a complete output (read back: the same frames and size as the input)
  or exactly one failures.csv row, never both, never neither (else: data loss);
- no output is replaced by something else (report assets, other inputs' outputs);
- nothing is written outside OUT (HOME and TMPDIR stay empty) and inputs are unchanged;
- failure reasons are at most 300 printable characters; no patient field in stdout,
  stderr, the manifest, failures.csv or the report;
- a second run on the same folders redoes nothing and adds no manifest row.

Usage::

    python scripts/fuzz_apply.py --cases 700 --seed 1        # the campaign (a few minutes)
    DENOISE_FUZZ_CASES=2000 pytest tests/test_fuzz_apply.py   # the CI suite, more cases

It prints one line per violation and a table of counts; the exit status is 1 when any
promise was broken.
"""

from __future__ import annotations

import argparse
import copy
import csv
import gzip
import hashlib
import io
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
DICOM_SAMPLES = PROJECT.parent / "shared" / "data" / "cxr" / "dicom"
#: Patient fields whose values must never appear in a failure reason.
PATIENT_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "OtherPatientIDs",
    "PatientAddress",
    "AccessionNumber",
    "InstitutionName",
    "ReferringPhysicianName",
)
#: A value planted in every generated DICOM so that a leak is always detectable.
PLANTED_NAME = "FUZZ^PATIENT^SECRET"
MAX_REASON = 300
FILES_PER_RUN = 25
RUN_TIMEOUT = 300
REPORT_ASSETS = ("report.html", "report.md", "manifest.csv", "failures.csv", ".denoise-apply.json")
#: Where the report's images go (an input folder of that name is written beside it).
REPORT_FOLDER = "report_views/"
#: The file a run creates first in OUT (once the model is loaded).
RUN_FILE = ".denoise-apply.json"


# --------------------------------------------------------------------------- cases


@dataclass
class FileCase:
    """One generated input: its path under IN (bytes: names may be any bytes) and content."""

    rel: bytes
    data: bytes
    label: str
    candidate: bool = True  # the planner must take it (an image suffix, or DICOM content)
    link: bytes | None = None  # a symbolic link to this target (relative to its folder), not a file
    through_link: bool = False  # a path that exists through a linked folder: nothing to write
    expect: str | None = None  # "out" (must be denoised) or "fail" (must be refused); None: either


@dataclass
class Tally:
    """Counts of one campaign."""

    cases: Counter = field(default_factory=Counter)
    runs: int = 0
    outcomes: Counter = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    echo: bool = False  # print each violation as it is found

    def violate(self, kind: str, text: str) -> None:
        self.outcomes[kind] += 1
        self.violations.append(f"{kind}: {text}")
        if self.echo:
            print(self.violations[-1], flush=True)


def _dicom_bytes(ds, original: bool = False) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=not original)
    return buffer.getvalue()


def dicom_bases(rng: np.random.Generator) -> list:
    """Small DICOM datasets to mutate: each shared sample cut to at most 64x64 (its header
    kept, pixel data native), an RLE-compressed copy of one, and a synthetic dataset."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.pixels import set_pixel_data
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

    bases = []
    for path in sorted(DICOM_SAMPLES.glob("*")) if DICOM_SAMPLES.is_dir() else []:
        ds = pydicom.dcmread(path, force=True)
        if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2"
        pixels = ds.pixel_array
        top, left = (pixels.shape[0] - 64) // 2, (pixels.shape[1] - 64) // 2
        crop = np.ascontiguousarray(pixels[top : top + 64, left : left + 64])
        bits = int(ds.get("BitsStored") or crop.dtype.itemsize * 8)
        set_pixel_data(ds, crop, str(ds.PhotometricInterpretation), bits)
        ds.PatientName = PLANTED_NAME
        bases.append(ds)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality, ds.SeriesNumber = (
        PLANTED_NAME,
        "FUZZID12345",
        "OT",
        3,
    )
    set_pixel_data(ds, rng.integers(0, 4096, (40, 48), dtype=np.uint16), "MONOCHROME2", 12)
    bases.append(ds)
    rle = copy.deepcopy(bases[-1])
    rle.compress(RLELossless)
    bases.append(rle)
    return bases


def _set(ds, keyword: str, value) -> None:
    """Set, or with None delete, an element; a value its VR refuses is stored as raw UN bytes."""
    from pydicom.datadict import tag_for_keyword
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    if value is None:
        if keyword in ds:
            delattr(ds, keyword)
        return
    try:
        setattr(ds, keyword, value)
    except (ValueError, TypeError, OverflowError):
        text = str(value).encode()
        text += b" " * (len(text) % 2)
        tag = Tag(tag_for_keyword(keyword))
        ds._dict[tag] = RawDataElement(tag, None, len(text), text, 0, False, True)  # written as is


#: Tag edits: (label, keyword, candidate values).
TAG_EDITS = [
    ("rows", "Rows", [0, 1, 63, 65, 30000, 65535]),
    ("columns", "Columns", [0, 1, 65, 30000]),
    ("bits-allocated", "BitsAllocated", [1, 8, 12, 32, 64, 0]),
    ("bits-stored", "BitsStored", [0, 1, 7, 16, 17, 33]),
    ("high-bit", "HighBit", [0, 31, 99]),
    ("pixel-representation", "PixelRepresentation", [1, 2]),
    (
        "photometric",
        "PhotometricInterpretation",
        ["MONOCHROME1", "RGB", "PALETTE COLOR", "YBR_FULL", "", "XYZ", None],
    ),
    ("samples", "SamplesPerPixel", [0, 3, 4]),
    ("frames", "NumberOfFrames", [0, 1, 2, 3, 100000, "-1", None]),
    ("slope", "RescaleSlope", ["NaN", "inf", "-inf", "0", "-1", "1e308", "abc", "1e-300"]),
    ("intercept", "RescaleIntercept", ["NaN", "-inf", "1e308", "x"]),
    ("series-number", "SeriesNumber", [2**31 - 1, -(2**31), "abc"]),
    ("window", "WindowCenter", ["NaN", "1e400"]),
    ("patient-name-long", "PatientName", [PLANTED_NAME * 200]),
]
SYNTAXES = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.1.99",
    "1.2.3.4",
    "",
]


def dicom_case(rng: np.random.Generator, bases: list) -> tuple[bytes, str]:
    """One mutated DICOM file's bytes and what was done."""
    base = bases[int(rng.integers(len(bases)))]
    ds = copy.deepcopy(base)
    kind = int(rng.integers(7))
    if kind == 0:
        label, keyword, values = TAG_EDITS[int(rng.integers(len(TAG_EDITS)))]
        value = values[int(rng.integers(len(values)))]
        _set(ds, keyword, value)
        try:
            return _dicom_bytes(ds, original=True), f"dicom tag {label}={str(value)[:20]}"
        except Exception:  # noqa: BLE001 - pydicom refuses to write some values
            return _dicom_bytes(base), f"dicom tag {label} (unwritable, plain copy)"
    if kind == 1:
        syntax = SYNTAXES[int(rng.integers(len(SYNTAXES)))]
        return _with_syntax(
            _dicom_bytes(base), syntax
        ), f"dicom transfer syntax {syntax or 'empty'}"
    if kind == 2:
        extra = [b"\0\0", bytes(ds.PixelData), b"\x01" * 7]
        chosen = extra[int(rng.integers(len(extra)))]
        if "NumberOfFrames" not in ds and ds.file_meta.TransferSyntaxUID.is_encapsulated is False:
            ds.PixelData = bytes(ds.PixelData) + chosen
            return _dicom_bytes(ds, original=True), f"dicom pixel data +{len(chosen)} bytes"
        ds.PixelData = bytes(ds.PixelData)[: len(ds.PixelData) // 2]
        return _dicom_bytes(ds, original=True), "dicom pixel data halved"
    raw = bytearray(_dicom_bytes(ds))
    pixel_at = raw.rfind(b"\xe0\x7f\x10\x00") if kind != 6 else len(raw)
    header_end = max(140, pixel_at if pixel_at > 0 else len(raw))
    if kind in (3, 6):
        flips = int(rng.integers(1, 9))
        for _ in range(flips):
            at = int(rng.integers(128, header_end))
            raw[at] ^= 1 << int(rng.integers(8))
        return bytes(raw), f"dicom {flips} bit flips in {'the header' if kind == 3 else 'the file'}"
    if kind == 4:
        cut = int(rng.integers(0, len(raw)))
        return bytes(raw[:cut]), f"dicom truncated at {cut}/{len(raw)}"
    length_at = [
        i
        for i in range(132, header_end - 8)
        if raw[i + 4 : i + 6] in (b"US", b"IS", b"DS", b"PN", b"UI")
    ]
    if length_at:
        at = length_at[int(rng.integers(len(length_at)))] + 6
        raw[at : at + 2] = struct.pack("<H", int(rng.choice([0, 1, 0xFFFF, 0x7FFF])))
    return bytes(raw), "dicom element length edited"


def _with_syntax(raw: bytes, syntax: str) -> bytes:
    """`raw` with its (0002,0010) Transfer Syntax UID replaced (the data left as encoded)."""
    at = raw.index(b"\x02\x00\x10\x00UI")
    length = struct.unpack("<H", raw[at + 6 : at + 8])[0]
    value = syntax.encode() + (b"\0" if len(syntax) % 2 else b"")
    return raw[: at + 6] + struct.pack("<H", len(value)) + value + raw[at + 8 + length :]


def _png(values: np.ndarray, **params) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG", **params)
    return buffer.getvalue()


def raster_case(rng: np.random.Generator) -> tuple[bytes, str, str]:
    """One PNG, JPEG or TIFF file (bytes, suffix, label), damaged half of the time."""
    import tifffile
    from PIL import Image

    h, w = (int(n) for n in rng.integers(4, 48, 2))
    kind = int(rng.integers(10))
    if kind == 0:
        data, suffix, label = (
            _png(rng.integers(0, 256, (h, w), dtype=np.uint8)),
            ".png",
            "png 8-bit",
        )
    elif kind == 1:
        data, suffix, label = (
            _png(rng.integers(0, 65536, (h, w), dtype=np.uint16)),
            ".png",
            "png 16-bit",
        )
    elif kind == 2:
        frames = [Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)) for _ in range(3)]
        buffer = io.BytesIO()
        frames[0].save(buffer, format="PNG", save_all=True, append_images=frames[1:])
        data, suffix, label = buffer.getvalue(), ".png", "apng 3 frames"
    elif kind == 3:
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if rng.random() < 0.5:
            rgb[..., 1] = rgb[..., 2] = rgb[..., 0]
        data, suffix, label = _png(rgb), ".png", "png rgb"
    elif kind == 4:
        buffer = io.BytesIO()
        exif = Image.Exif()
        exif[0x0112] = int(rng.integers(0, 10))
        Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(
            buffer, format="JPEG", exif=exif
        )
        data, suffix, label = buffer.getvalue(), ".jpg", f"jpeg exif orientation {exif[0x0112]}"
    else:
        buffer = io.BytesIO()
        dtype = [np.uint8, np.uint16, np.int16, np.float32, np.float64][int(rng.integers(5))]
        values = (rng.random((h, w)) * 1000).astype(dtype)
        if dtype in (np.float32, np.float64) and rng.random() < 0.5:
            values.flat[int(rng.integers(values.size))] = [np.nan, np.inf, -np.inf][
                int(rng.integers(3))
            ]
        pages = int(rng.integers(1, 4))
        with tifffile.TiffWriter(buffer) as tif:
            for page in range(pages):
                shape = (h, w) if page == 0 or rng.random() < 0.5 else (w + 1, h)
                tif.write(
                    np.resize(values, shape).astype(dtype),
                    photometric="miniswhite" if rng.random() < 0.2 else "minisblack",
                )
        data, suffix, label = (
            buffer.getvalue(),
            ".tif",
            f"tiff {np.dtype(dtype).name} {pages} page(s)",
        )
    if rng.random() < 0.5:
        return data, suffix, label
    return _damaged(rng, data, suffix, label)


def _damaged(
    rng: np.random.Generator, data: bytes, suffix: str, label: str
) -> tuple[bytes, str, str]:
    raw, what = _damage_raster(rng, bytearray(data), suffix)
    return bytes(raw), suffix, f"{label}, {what}"


def _damage_raster(rng: np.random.Generator, raw: bytearray, suffix: str) -> tuple[bytearray, str]:
    """Flip header bits, truncate, or edit a size field of a PNG or TIFF header."""
    kind = int(rng.integers(3))
    if kind == 0:
        for _ in range(int(rng.integers(1, 6))):
            at = int(rng.integers(0, min(len(raw), 200)))
            raw[at] ^= 1 << int(rng.integers(8))
        return raw, "header bit flips"
    if kind == 1:
        cut = int(rng.integers(0, len(raw)))
        return raw[:cut], f"truncated at {cut}/{len(raw)}"
    huge = int(rng.choice([0, 1, 60000, 0x7FFFFFFF]))
    if suffix == ".png":
        field_at = 16 + 4 * int(rng.integers(2))  # IHDR width or height (CRC left stale)
        raw[field_at : field_at + 4] = struct.pack(">I", huge)
        return raw, f"png size field {huge}"
    if suffix == ".tif" and raw[:2] == b"II":
        ifd = struct.unpack("<I", raw[4:8])[0]
        count = struct.unpack("<H", raw[ifd : ifd + 2])[0]
        entries = [ifd + 2 + 12 * i for i in range(count)]
        at = entries[int(rng.integers(len(entries)))]
        tag = struct.unpack("<H", raw[at : at + 2])[0]
        raw[at + 8 : at + 12] = struct.pack("<I", huge)
        return raw, f"tiff tag {tag} = {huge}"
    return raw, "unchanged"


def nifti_case(rng: np.random.Generator) -> tuple[bytes, str, str]:
    """One NIfTI-1 file (.nii or .nii.gz), its header edited half of the time."""
    import nibabel as nib

    shape = tuple(int(n) for n in rng.integers(3, 24, 2)) + (
        (int(rng.integers(1, 4)),) if rng.random() < 0.5 else ()
    )
    dtype = [np.uint8, np.int16, np.float32, np.float64][int(rng.integers(4))]
    values = (rng.random(shape) * 500).astype(dtype)
    label = f"nifti {np.dtype(dtype).name} {'x'.join(map(str, shape))}"
    if dtype in (np.float32, np.float64) and rng.random() < 0.4:
        values.flat[int(rng.integers(values.size))] = [np.nan, np.inf][int(rng.integers(2))]
        label += " non-finite"
    raw = bytearray(nib.Nifti1Image(values, np.eye(4)).to_bytes())
    if rng.random() < 0.5:
        edit = int(rng.integers(6))
        if edit == 0:
            raw[42:44] = struct.pack("<h", int(rng.choice([0, -1, 30000, 32767])))  # dim[1]
            label += ", dim[1] edited"
        elif edit == 1:
            raw[40:42] = struct.pack("<h", int(rng.choice([0, 1, 7, 8, 99])))  # dim[0]
            label += ", dim[0] edited"
        elif edit == 2:
            raw[70:72] = struct.pack(
                "<h", int(rng.choice([0, 1, 32, 128, 1792, 2304, 9999]))
            )  # datatype
            label += ", datatype edited"
        elif edit == 3:
            raw[108:112] = struct.pack(
                "<f", float(rng.choice([0.0, 1e9, -352.0, np.nan]))
            )  # vox_offset
            label += ", vox_offset edited"
        elif edit == 4:
            raw[112:120] = struct.pack(
                "<ff",
                float(rng.choice([np.nan, np.inf, 0.0, 1e38])),
                float(rng.choice([0.0, np.inf])),
            )
            label += ", scl_slope/inter edited"
        else:
            raw = raw[: int(rng.integers(0, len(raw)))]
            label += ", truncated"
    if rng.random() < 0.5:
        data = gzip.compress(bytes(raw))
        if rng.random() < 0.2:
            data = data[: len(data) // 2]
            label += ", gzip cut"
        return data, ".nii.gz", label
    return bytes(raw), ".nii", label


#: Hostile names: (label, function of a plain stem and suffix -> relative path bytes).
NAMES: list[tuple[str, Callable[[str, str], bytes]]] = [
    ("plain", lambda s, x: f"{s}{x}".encode()),
    ("non-utf8", lambda s, x: s.encode() + b"_\xe9\xff" + x.encode()),
    ("newline-comma-quote", lambda s, x: f'{s}\n,"q"{x}'.encode()),
    ("long-name", lambda s, x: (s + "_" + "n" * (240 - len(s) - len(x))).encode() + x.encode()),
    ("leading-dash-space", lambda s, x: f"-{s} x {x}".encode()),
    ("unicode", lambda s, x: f"{s}_\u202eŻółw{x}".encode()),
    (
        "views-collision",
        lambda s, x: (
            b"report_views/000_output.png" if x == ".png" else f"report_views/{s}{x}".encode()
        ),
    ),
    (
        "views-noise",
        lambda s, x: (
            b"report_views/noise_before_after.png"
            if x == ".png"
            else f"report_views/{s}{x}".encode()
        ),
    ),
    (
        "report-name",
        lambda s, x: f"report{x}".encode() if x in (".png", ".dcm") else f"report_{s}{x}".encode(),
    ),
    ("nested", lambda s, x: f"d1/d2/{s}{x}".encode()),
]


def file_cases(rng: np.random.Generator, count: int) -> list[FileCase]:
    """`count` generated input files (DICOM, raster and NIfTI in about 5:2:1)."""
    bases = dicom_bases(rng)
    cases: list[FileCase] = []
    used: set[bytes] = set()
    for index in range(count):
        pick = rng.random()
        if pick < 0.6:
            data, label = dicom_case(rng, bases)
            suffix = ".dcm" if rng.random() < 0.9 else ""
        elif pick < 0.85:
            data, suffix, label = raster_case(rng)
        else:
            data, suffix, label = nifti_case(rng)
        name_label, name = NAMES[int(rng.integers(len(NAMES)))] if rng.random() < 0.3 else NAMES[0]
        rel = name(f"c{index:04d}", suffix)
        if rel in used:  # a fixed hostile name is taken: one file per name
            name_label, rel = "plain", NAMES[0][1](f"c{index:04d}", suffix)
        used.add(rel)
        candidate = bool(suffix) or data[128:132] == b"DICM"
        cases.append(FileCase(rel, data, f"{label}; name {name_label}", candidate))
    cases += structural_cases(rng) + format_cases(rng, bases, max(1, count // 60)) + link_cases(rng)
    return cases


def structural_cases(rng: np.random.Generator) -> list[FileCase]:
    """Inputs whose outputs could clash: a multi-page TIFF beside a ``.frames`` folder,
    ``x.jpg`` beside ``x.png``, a name that looks like a temporary output."""
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer, rng.integers(0, 255, (3, 8, 8), dtype=np.uint8), photometric="minisblack"
    )
    png = _png(rng.integers(0, 256, (9, 7), dtype=np.uint8))
    from PIL import Image

    jpeg = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (9, 7), dtype=np.uint8)).save(jpeg, format="JPEG")
    return [
        FileCase(b"clash/a.tif", buffer.getvalue(), "clash: 3-page tiff beside a.frames/"),
        FileCase(
            b"clash/a.frames/y.png", png, "clash: png inside a folder named like a frames folder"
        ),
        FileCase(b"clash/x.png", png, "clash: x.png beside x.jpg"),
        FileCase(b"clash/x.jpg", jpeg.getvalue(), "clash: x.jpg beside x.png"),
        FileCase(b"clash/b.partial-1.png", png, "clash: a name that looks like a temporary output"),
        FileCase(b"clash/notes.txt", b"not an image", "text file (ignored)", candidate=False),
        FileCase(
            b"case/A.png", png, "clash: A.png beside a.png (first in sorted order)", expect="out"
        ),
        FileCase(
            b"case/a.png",
            png,
            "clash: a.png beside A.png (one file on case-insensitive disks)",
            expect="fail",
        ),
    ]


def link_cases(rng: np.random.Generator) -> list[FileCase]:
    """Symbolic links: to a folder inside IN (followed: its files are denoised under the
    link's path), to a folder and a file outside IN, and to a folder holding the link (a
    loop): each of those is one failure row."""
    png = _png(rng.integers(0, 256, (8, 6), dtype=np.uint8))
    return [
        FileCase(
            b"links/real/r.png", png, "link: png in a folder linked from inside IN", expect="out"
        ),
        FileCase(
            b"links/inside", b"", "link: folder link inside IN", candidate=False, link=b"real"
        ),
        FileCase(
            b"links/inside/r.png",
            b"",
            "link: png seen through the folder link",
            through_link=True,
            expect="out",
        ),
        FileCase(
            b"links/outside", b"", "link: folder link leaving IN", link=b"../../home", expect="fail"
        ),
        FileCase(
            b"links/away.png",
            b"",
            "link: file link leaving IN",
            link=b"../../home/none.png",
            expect="fail",
        ),
        FileCase(
            b"links/real/loop",
            b"",
            "link: folder link to its own parent (a loop)",
            link=b"..",
            expect="fail",
        ),
    ]


def format_cases(rng: np.random.Generator, bases: list, count: int) -> list[FileCase]:
    """`count` files of each valid variant the readers must read right (LZW, Deflate and
    PackBits TIFF, big-endian DICOM, whole JPEG Baseline DICOM, NIfTI with scl_slope 0 or
    NaN) and of each invalid one they must refuse (a JPEG frame cut short, an infinite
    scl_slope), and DICOMs whose SOP Class UID length runs into the patient module."""
    makers = [
        ("tiff-compressed", _compressed_tiff, ".tif"),
        ("dicom-big-endian", _big_endian_dicom, ".dcm"),
        ("dicom-jpeg", _jpeg_dicom, ".dcm"),
        ("nifti-slope", _nifti_slope, ".nii"),
        ("dicom-uid-swallow", _uid_swallow, ".dcm"),
    ]
    cases = []
    for index in range(count):
        for name, make, suffix in makers:
            data, label, expect = make(rng, bases)
            cases.append(
                FileCase(
                    f"formats/{name}-{index:03d}{suffix}".encode(),
                    data,
                    f"{name}: {label}",
                    expect=expect,
                )
            )
    return cases


def _compressed_tiff(rng: np.random.Generator, bases: list) -> tuple[bytes, str, str | None]:
    import tifffile

    compression = ["lzw", "deflate", "packbits"][int(rng.integers(3))]
    dtype = [np.uint8, np.uint16][int(rng.integers(2))]
    values = rng.integers(
        0, np.iinfo(dtype).max, tuple(int(n) for n in rng.integers(4, 40, 2)), dtype=dtype
    )
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, values, compression=compression, photometric="minisblack")
    return buffer.getvalue(), f"{compression} {np.dtype(dtype).name}", "out"


def _big_endian_dicom(rng: np.random.Generator, bases: list) -> tuple[bytes, str, str | None]:
    """A base with native pixel data re-encoded as Explicit VR Big Endian (a retired syntax)."""
    import pydicom
    from pydicom.uid import ExplicitVRBigEndian

    ds = copy.deepcopy(bases[-2])  # the synthetic dataset: no word (OW) values to swap
    values = rng.integers(
        0, 4096, (int(rng.integers(4, 40)), int(rng.integers(4, 40))), dtype=np.uint16
    )
    ds.Rows, ds.Columns = values.shape
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    ds.PixelData = values.astype(">u2").tobytes()
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue(), f"{values.shape[1]}x{values.shape[0]}", "out"


def _jpeg_dicom(rng: np.random.Generator, bases: list) -> tuple[bytes, str, str | None]:
    """An 8-bit JPEG Baseline DICOM, its one frame cut short half of the time (invalid)."""
    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    h, w = (int(n) for n in rng.integers(16, 64, 2))
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(
        buffer, format="JPEG", quality=90
    )
    frame, label, expect = buffer.getvalue(), f"whole {w}x{h}", "out"
    if rng.random() < 0.5:
        cut = int(rng.integers(len(frame) // 4, len(frame) - 2))
        frame, label, expect = frame[:cut], f"frame cut at {cut}/{len(frame)}", "fail"
    ds = copy.deepcopy(bases[-2])  # the synthetic dataset: its patient name is planted
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = h, w, 8, 8, 7
    ds.PixelData = encapsulate([frame + b"\0" * (len(frame) % 2)])
    ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
    return _dicom_bytes(ds), label, expect


def _nifti_slope(rng: np.random.Generator, bases: list) -> tuple[bytes, str, str | None]:
    """A NIfTI-1 image with scl_slope 0 or NaN (no scaling), inf or -inf (invalid), or 2."""
    import nibabel as nib

    slope = float(rng.choice([0.0, np.nan, np.inf, -np.inf, 2.0]))
    raw = bytearray(
        nib.Nifti1Image(rng.integers(0, 500, (9, 7)).astype(np.int16), np.eye(4)).to_bytes()
    )
    raw[112:120] = struct.pack("<ff", slope, 3.0)
    return bytes(raw), f"scl_slope {slope}", "fail" if np.isinf(slope) else "out"


def _uid_swallow(rng: np.random.Generator, bases: list) -> tuple[bytes, str, str | None]:
    """A DICOM whose SOP Class UID length runs into the next elements (the planted patient
    name among them): pydicom's value warnings would quote them."""
    raw = bytearray(_dicom_bytes(bases[-2]))
    at = raw.index(b"\x08\x00\x16\x00UI")
    length = int(rng.choice([0x100, 0x400, 0x7FFE]))
    raw[at + 6 : at + 8] = struct.pack("<H", length)
    return bytes(raw), f"length {length}", None


# --------------------------------------------------------------------------- running


def tiny_checkpoint(path: Path, state: Callable | None = None) -> Path:
    """An untrained 4-filter conv checkpoint of this tool's format (`state` edits its weights)."""
    import torch

    from pipeline.checkpoint import build_checkpoint, save_checkpoint
    from pipeline.config import Config
    from pipeline.models import build_model

    torch.manual_seed(0)
    cfg = Config.model_validate({"model": {"name": "conv", "features": 4}, "run": {"name": "fuzz"}})
    ckpt = build_checkpoint(build_model(cfg.model), cfg)
    if state is not None:
        ckpt["model_state"] = state(ckpt["model_state"])
    return save_checkpoint(ckpt, path)


def tiny_onnx(path: Path, checkpoint: Path) -> Path:
    """`checkpoint` exported as ONNX by ``denoise export`` (checked against PyTorch)."""
    from pipeline.export import export_model

    export_model(checkpoint, "onnx", path)
    return path


def write_inputs(root: Path, cases: list[FileCase]) -> None:
    """Create every case's file under `root` (names are bytes: any byte but / and NUL)."""
    base = os.fsencode(root)
    for case in cases:
        path = os.path.join(base, case.rel)
        if case.through_link:
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if case.link is not None:
            os.symlink(case.link, path)
            continue
        with open(path, "wb") as handle:
            handle.write(case.data)


def long_path_case(root: Path) -> bytes:
    """A file whose path under `root` is longer than 4,096 characters (PATH_MAX)."""
    part = b"p" * 250
    fd = os.open(root, os.O_RDONLY)
    rel = b""
    try:
        for _ in range(17):
            os.mkdir(part, dir_fd=fd)
            inner = os.open(part, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
            rel = os.path.join(rel, part) if rel else part
        handle = os.open(b"deep.png", os.O_WRONLY | os.O_CREAT, dir_fd=fd)
        os.write(handle, _png(np.zeros((5, 5), np.uint8)))
        os.close(handle)
    finally:
        os.close(fd)
    return os.path.join(rel, b"deep.png")


def long_name_case(root: Path) -> bytes:
    """A DICOM file without a suffix in a folder whose path is under 4,096 bytes, its own
    over it: it cannot be opened to tell what it is (it must be recorded, not dropped)."""
    fd = os.open(root, os.O_RDONLY)
    rel, length = b"", len(os.fsencode(root))
    try:
        while length + 250 < 4094:
            os.mkdir(b"q" * 249, dir_fd=fd)
            inner = os.open(b"q" * 249, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd, length = inner, length + 250
            rel = os.path.join(rel, b"q" * 249) if rel else b"q" * 249
        handle = os.open(b"I" * 255, os.O_WRONLY | os.O_CREAT, dir_fd=fd)
        os.write(handle, b"\0" * 128 + b"DICM")
        os.close(handle)
    finally:
        os.close(fd)
    return os.path.join(rel, b"I" * 255)


def snapshot(root: Path) -> dict[bytes, str]:
    """SHA-256 of every file under `root` by relative path (names as bytes, long paths too)."""
    found: dict[bytes, str] = {}

    def walk(fd: int, rel: bytes) -> None:
        for entry in os.scandir(fd):
            name = os.fsencode(entry.name)
            if (
                entry.is_symlink()
            ):  # a link is its target's name (never followed: it may leave the tree)
                found[os.path.join(rel, name) if rel else name] = "link:" + os.fsdecode(
                    os.readlink(name, dir_fd=fd)
                )
            elif entry.is_dir(follow_symlinks=False):
                inner = os.open(name, os.O_RDONLY, dir_fd=fd)
                try:
                    walk(inner, os.path.join(rel, name) if rel else name)
                finally:
                    os.close(inner)
            else:
                handle = os.open(name, os.O_RDONLY, dir_fd=fd)
                with os.fdopen(handle, "rb") as stream:
                    found[os.path.join(rel, name) if rel else name] = hashlib.sha256(
                        stream.read()
                    ).hexdigest()

    if root.is_dir():
        top = os.open(root, os.O_RDONLY)
        try:
            walk(top, b"")
        finally:
            os.close(top)
    return found


@dataclass
class RunResult:
    code: int
    out: str
    err: str
    seconds: float


def run_apply(args: list[str], sandbox: Path, timeout: int = RUN_TIMEOUT) -> RunResult:
    """``python -m pipeline apply ARGS`` with HOME and TMPDIR inside `sandbox`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME")
    }
    env.update(
        HOME=str(sandbox / "home"),
        TMPDIR=str(sandbox / "tmp"),
        PYTHONPATH=str(PROJECT),
        OMP_NUM_THREADS="1",
        PYTHONIOENCODING="utf-8",
    )
    for name in ("home", "tmp"):
        (sandbox / name).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "apply", *args],
        env=env,
        cwd=sandbox,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return RunResult(
        result.returncode,
        result.stdout.decode("utf-8", "replace"),
        result.stderr.decode("utf-8", "replace"),
        time.perf_counter() - start,
    )


def apply_args(source: Path, dest: Path, model: Path, *extra: str) -> list[str]:
    return [
        "-i",
        str(source),
        "-o",
        str(dest),
        "--model",
        str(model),
        "--device",
        "cpu",
        "--no-progress",
        "--tile-size",
        "256",
        *extra,
    ]


def read_records(path: Path) -> list[dict[str, str]]:
    """Rows of a manifest or failures CSV (the field limit raised: a long field is checked, not
    fatal)."""
    if not path.is_file():
        return []
    csv.field_size_limit(1 << 30)
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------- checks


def _recorded(path_field: str, source: Path) -> bytes | None:
    """The relative path (bytes) a record names under `source`, or None."""
    from pipeline.text import path_text

    for root in {path_text(source), path_text(source.resolve())}:
        if path_field.startswith(root + "/"):
            rel = path_field[len(root) + 1 :]
            return rel.encode("utf-8", "surrogateescape")
    return None


def _folder_record(by_input: dict, rel: bytes) -> list:
    """The failure row of a folder holding `rel` (a folder that could not be listed)."""
    parent = os.path.dirname(rel)
    while parent:
        rows = [item for item in by_input.get(_escaped(parent), []) if item[0] == "fail"]
        if rows:
            return rows
        parent = os.path.dirname(parent)
    return []


def path_from_text(text: str) -> str:
    from pipeline.text import path_from_text as decode

    return decode(text)


def _escaped(rel: bytes) -> bytes:
    from pipeline.text import path_text

    return path_text(rel).encode()


def _expected_shape(path: bytes) -> tuple[int, tuple[int, int]] | None:
    """(frames, first frame's shape) of an input as the readers see it; None: unreadable."""
    from pipeline.io import read_image

    try:
        images = read_image(os.fsdecode(path))
    except Exception:  # noqa: BLE001 - unreadable inputs must have failure rows instead
        return None
    return len(images), images[0].pixels.shape


def _output_shape(path: Path) -> tuple[int, tuple[int, int]] | None:
    from pipeline.io import read_image

    try:
        if path.is_dir():
            frames = sorted(p for p in path.iterdir() if not p.name.startswith("."))
            images = [image for frame in frames for image in read_image(frame)]
        else:
            images = read_image(path)
    except Exception:  # noqa: BLE001 - an unreadable output is a broken promise
        return None
    return (len(images), images[0].pixels.shape) if images else None


def check_run(
    tally: Tally,
    label: str,
    cases: list[FileCase],
    source: Path,
    dest: Path,
    sandbox: Path,
    result: RunResult,
    before: dict[bytes, str],
    expect_codes=(0, 1),
) -> None:
    """Check every promise for one batch run; record violations in `tally`."""
    tally.runs += 1
    if "Traceback" in result.err:
        tally.violate("traceback", f"{label}: {result.err.strip().splitlines()[-1][:200]}")
    if result.code not in expect_codes:
        tally.violate(
            "wrong-exit",
            f"{label}: exit {result.code}, expected {expect_codes}: {result.err.strip()[-300:]}",
        )
    _nothing_outside_out(tally, label, sandbox)
    if snapshot(source) != before:
        tally.violate("input-changed", f"{label}: the input folder changed")
    if result.code == 2:
        return
    manifest = read_records(dest / "manifest.csv")
    failures = read_records(dest / "failures.csv")
    if (result.code == 1) != bool(failures):
        tally.violate(
            "wrong-exit", f"{label}: exit {result.code} with {len(failures)} failure rows"
        )
    patient = _patient_values(cases)
    _check_no_patient_data(tally, label, dest, result, patient)
    for row in failures:
        reason = row.get("reason", "")
        if len(reason) > MAX_REASON or not reason.isprintable():
            tally.violate(
                "bad-reason", f"{label}: reason of {len(reason)} characters: {reason[:80]!r}"
            )
        if any(value in reason for value in patient):
            tally.violate(
                "patient-data", f"{label}: a reason holds a patient field: {reason[:80]!r}"
            )
        if re.search(r"\bunexpected [A-Za-z]*(Error|Exception)\b", reason):
            tally.violate("unexpected-error", f"{label}: {reason[:200]}")
    outputs: dict[str, bytes] = {}
    by_input: dict[bytes, list] = {}
    for row in manifest:
        rel = _recorded(row.get("input", ""), source)
        by_input.setdefault(rel, []).append(("out", row))
    for row in failures:
        rel = _recorded(row.get("path", ""), source)
        by_input.setdefault(rel, []).append(("fail", row))
    for case in cases:
        if not case.candidate:
            if _escaped(case.rel) in by_input:
                tally.violate("wrong-record", f"{label}: ignored file {case.rel!r} was recorded")
            continue
        tally.cases[case.label.split(";")[0].split(",")[0].split(" ")[0].rstrip(":")] += 1
        records = by_input.get(_escaped(case.rel), []) or _folder_record(by_input, case.rel)
        kinds = sorted(kind for kind, _ in records)
        if kinds not in (["out"], ["fail"]):
            tally.violate(
                "data-loss", f"{label}: {case.rel[:120]!r} ({case.label}) has records {kinds}"
            )
            continue
        if case.expect is not None and kinds != [case.expect]:
            reason = records[0][1].get("reason", "")[:120]
            tally.violate(
                "wrong-outcome",
                f"{label}: {case.rel[:120]!r} ({case.label}): {kinds[0]}, expected "
                f"{case.expect} {reason!r}",
            )
        if kinds == ["fail"]:
            continue
        row = records[0][1]
        output = row.get("output", "")
        if output in outputs or output in REPORT_ASSETS or output.startswith(REPORT_FOLDER):
            tally.violate("data-loss", f"{label}: output {output!r} of {case.rel[:80]!r} is shared")
        outputs[output] = case.rel
        got = _output_shape(dest / path_from_text(output))
        want = _expected_shape(os.path.join(os.fsencode(source), case.rel))
        if got is None or want is None or got != want:
            tally.violate(
                "data-loss",
                f"{label}: output {output!r} of {case.rel[:80]!r} ({case.label}) "
                f"reads as {got}, input as {want}",
            )
    leftovers = [
        k for k in snapshot(dest) if os.path.basename(k).startswith(b".") and b".partial-" in k
    ]
    if leftovers:
        tally.violate("temp-left", f"{label}: temporary files left: {leftovers[:3]}")


#: Text that apply writes: none of it may hold a patient field (the DICOM outputs do, by design).
TEXT_OUTPUTS = ("manifest.csv", "failures.csv", "report.html", "report.md")


def _check_no_patient_data(
    tally: Tally, label: str, dest: Path, result: RunResult, patient: set[str]
) -> None:
    """No planted patient field in stdout, stderr, the manifest, failures.csv or the report;
    no line of them longer than a few hundred characters of a library's words."""
    texts = {"stdout": result.out, "stderr": result.err}
    for name in TEXT_OUTPUTS:
        if (dest / name).is_file():
            texts[name] = (dest / name).read_text("utf-8", "replace")
    for name, text in texts.items():
        found = sorted(value for value in patient if value in text)
        if found:
            tally.violate("patient-data", f"{label}: {name} holds the patient field(s) {found}")
    long_lines = [line for line in result.err.splitlines() if len(line) > 2 * MAX_REASON]
    if long_lines:
        tally.violate(
            "bad-reason",
            f"{label}: stderr line of {len(long_lines[0])} characters: {long_lines[0][:80]!r}",
        )


def _nothing_outside_out(tally: Tally, label: str, sandbox: Path) -> None:
    """The run's HOME and TMPDIR (inside `sandbox`) are empty again."""
    for name in ("home", "tmp"):
        left = list((sandbox / name).iterdir())
        if left:
            tally.violate(
                "wrote-outside-out", f"{label}: {name}/ holds {[p.name for p in left][:3]}"
            )


def _patient_values(cases: list[FileCase]) -> set[str]:
    """Patient fields planted in the generated DICOMs (and the name parts, 4+ characters)."""
    return {PLANTED_NAME, "FUZZID12345", *PLANTED_NAME.split("^")} - {"FUZZ"}


def check_rerun(
    tally: Tally, label: str, source: Path, dest: Path, model: Path, sandbox: Path
) -> None:
    """A second run finds everything finished: same records, no new manifest row, no crash."""
    rows_before = read_records(dest / "manifest.csv")
    failures_before = read_records(dest / "failures.csv")
    result = run_apply(apply_args(source, dest, model, "--no-report"), sandbox)
    tally.runs += 1
    if "Traceback" in result.err:
        tally.violate("traceback", f"{label} rerun: {result.err.strip().splitlines()[-1][:200]}")
    if result.code != (1 if failures_before else 0):
        tally.violate(
            "wrong-exit", f"{label} rerun: exit {result.code}: {result.err.strip()[-200:]}"
        )
    rows_after = read_records(dest / "manifest.csv")
    if len(rows_after) != len(rows_before):
        tally.violate(
            "duplicate-rows",
            f"{label} rerun: manifest {len(rows_before)} -> {len(rows_after)} rows",
        )


# --------------------------------------------------------------------------- campaign


def file_campaign(
    tally: Tally,
    cases: list[FileCase],
    work: Path,
    model: Path,
    per_run: int,
    long_path: bool = True,
) -> None:
    """Run the file cases in batches of `per_run`; check each batch and its rerun."""
    for start in range(0, len(cases), per_run):
        batch = cases[start : start + per_run]
        label = f"batch {start // per_run}"
        sandbox = work / f"b{start // per_run:03d}"
        source, dest = sandbox / "in", sandbox / "out"
        source.mkdir(parents=True)
        write_inputs(source, batch)
        if long_path and start == 0:
            rel, unnamed = long_path_case(source), long_name_case(source)
            batch = [
                *batch,
                FileCase(rel, b"", "long-path: png path over 4096 characters"),
                FileCase(
                    unnamed, b"", "long-path: suffix-less file, its path over 4096 characters"
                ),
            ]
        before = snapshot(source)
        try:
            result = run_apply(apply_args(source, dest, model), sandbox)
        except subprocess.TimeoutExpired:
            tally.violate("timeout", f"{label}: no result in {RUN_TIMEOUT} s")
            continue
        check_run(tally, label, batch, source, dest, sandbox, result, before)
        if result.code in (0, 1):
            check_rerun(tally, label, source, dest, model, sandbox)
        shutil.rmtree(sandbox, ignore_errors=True)


def _small_input(folder: Path, count: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        ramp = np.add.outer(np.arange(16), np.arange(16)) * 4 + 10 * index + 20
        (folder / f"i{index}.png").write_bytes(_png((ramp % 256).astype(np.uint8)))
    return folder


def run_cases(tally: Tally, work: Path, model: Path, quick: bool = False) -> None:
    """Run-level cases: bad checkpoints and output folders, full disks, concurrent and
    killed runs. `quick`: only the concurrent runs (killed runs are tested in
    tests/test_apply.py, the rest in-process in tests/test_apply_hostile.py)."""
    import torch

    sandbox = work / "runs"
    source = _small_input(sandbox / "in")
    before = snapshot(source)
    if quick:
        _concurrent(tally, sandbox, source, model)
        return

    def expect(label: str, args: list[str], codes: tuple[int, ...], words: str = "") -> RunResult:
        return expect_run(tally, sandbox, label, args, codes, words)

    checkpoints = {
        "nan-weights": lambda s: {
            k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
            for k, v in s.items()
        },
        "inf-weights": lambda s: {
            k: v * float("inf") if v.is_floating_point() else v for k, v in s.items()
        },
    }
    for name, edit in checkpoints.items():
        path = tiny_checkpoint(sandbox / f"{name}.pt", edit)
        expect(f"checkpoint {name}", apply_args(source, sandbox / f"out-{name}", path), (1, 2))
        _no_non_finite_outputs(tally, name, sandbox / f"out-{name}")
    good = tiny_checkpoint(sandbox / "good.pt")
    (sandbox / "corrupt.pt").write_bytes(good.read_bytes()[:300])
    (sandbox / "empty.pt").write_bytes(b"")
    (sandbox / "text.pt").write_bytes(b"hello")
    (sandbox / "evil.pt").write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR.")
    wrong = Path(sandbox / "wrong.pt")
    state = torch.load(good, weights_only=True)
    state["model_state"] = {k + "x": v for k, v in state["model_state"].items()}
    torch.save(state, wrong)
    shape = Path(sandbox / "shape.pt")
    state = torch.load(good, weights_only=True)
    state["config"]["model"]["features"] = 8
    torch.save(state, shape)
    for name in ("corrupt", "empty", "text", "evil", "wrong", "shape"):
        expect(
            f"checkpoint {name}",
            apply_args(source, sandbox / f"out-{name}", sandbox / f"{name}.pt"),
            (2,),
        )
    if (sandbox / "pwned").exists():
        tally.violate("code-ran", "a malicious checkpoint ran code")

    (sandbox / "afile").write_text("x")
    expect("out-parent-is-a-file", apply_args(source, sandbox / "afile" / "out", good), (2,))
    expect("out-is-a-file", apply_args(source, sandbox / "afile", good), (2,))
    expect("in-missing", apply_args(sandbox / "missing", sandbox / "o1", good), (2,))
    expect("out-inside-in", apply_args(source, source / "out", good), (2,))
    if os.geteuid() != 0:
        locked = sandbox / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        expect("out-read-only", apply_args(source, locked / "out", good), (2,))
        locked.chmod(0o700)
    expect("tile-size-zero", apply_args(source, sandbox / "o2", good, "--tile-size", "0"), (2,))
    expect("overlap-one", apply_args(source, sandbox / "o3", good, "--overlap", "1"), (2,))
    honesty_cases(tally, work, good)
    onnx_case(tally, work, tiny_onnx(sandbox / "tiny.onnx", good))
    terminated_case(tally, work, good)
    _small_disk(tally, sandbox, good)
    _concurrent(tally, sandbox, source, good)
    _killed(tally, sandbox, source, good)
    if snapshot(source) != before:
        tally.violate("input-changed", "run cases: the input folder changed")


def honesty_cases(tally: Tally, work: Path, model: Path) -> None:
    """Run-level cases of "say what happened" (issue 28): a file already under an output's
    name is a clash row, never "finished"; ``-o ""`` and ``--overlap 0.99`` are refused;
    an input folder without images exits 1 with a warning."""
    sandbox = work / "honest"
    source = _small_input(sandbox / "in")
    dest = sandbox / "out-foreign"
    dest.mkdir()
    foreign = (source / "i0.png").read_bytes()  # `cp in/i0.png out/`: not denoised
    (dest / "i0.png").write_bytes(foreign)
    expect_run(
        tally, sandbox, "existing-output-name", apply_args(source, dest, model, "--no-report"), (1,)
    )
    reasons = {Path(r["path"]).name: r["reason"] for r in read_records(dest / "failures.csv")}
    if (dest / "i0.png").read_bytes() != foreign or "already exists" not in reasons.get(
        "i0.png", ""
    ):
        tally.violate(
            "data-loss",
            f"existing-output-name: foreign i0.png replaced or not recorded ({reasons})",
        )
    if len(read_records(dest / "manifest.csv")) != 2:
        tally.violate("data-loss", "existing-output-name: the other inputs have no manifest rows")
    empty_out = ["-i", str(source), "-o", "", *apply_args(source, dest, model)[4:]]
    expect_run(tally, sandbox, "empty-output-path", empty_out, (2,), "-o")
    if (sandbox / "manifest.csv").exists():
        tally.violate(
            "wrote-outside-out", "empty-output-path: outputs written into the current folder"
        )
    expect_run(
        tally,
        sandbox,
        "overlap-bound",
        apply_args(source, sandbox / "o-overlap", model, "--overlap", "0.99"),
        (2,),
        "overlap",
    )
    (sandbox / "in-empty").mkdir()
    (sandbox / "in-empty" / "notes.txt").write_text("no image here")
    expect_run(
        tally,
        sandbox,
        "empty-input",
        apply_args(sandbox / "in-empty", sandbox / "o-empty", model),
        (1,),
        "no image",
    )
    _nothing_outside_out(tally, "honesty cases", sandbox)


def onnx_case(tally: Tally, work: Path, onnx: Path) -> None:
    """An ONNX model from ``denoise export``: onnxruntime writes nothing into HOME or TMPDIR."""
    sandbox = work / "onnx"
    source = _small_input(sandbox / "in")
    expect_run(
        tally, sandbox, "onnx-model", apply_args(source, sandbox / "out", onnx, "--no-report"), (0,)
    )
    _nothing_outside_out(tally, "onnx-model", sandbox)


def terminated_case(tally: Tally, work: Path, model: Path, delay: float = 1.0) -> None:
    """SIGTERM during a run: it exits 143 and leaves no temporary file, in OUT or TMPDIR."""
    sandbox = work / "term"
    source = sandbox / "in"
    source.mkdir(parents=True)
    for index in range(4):  # tiles of 8 px every 2 px: a few seconds per image
        (source / f"big{index}.png").write_bytes(
            _png((np.add.outer(np.arange(256), np.arange(256)) % 251).astype(np.uint8))
        )
    dest = sandbox / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CACHE_HOME")}
    env.update(
        HOME=str(sandbox / "home"),
        TMPDIR=str(sandbox / "tmp"),
        PYTHONPATH=str(PROJECT),
        OMP_NUM_THREADS="1",
    )
    for name in ("home", "tmp"):
        (sandbox / name).mkdir(parents=True, exist_ok=True)
    slow = ["--tile-size", "8", "--overlap", "0.75", "--batch-size", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "apply", *apply_args(source, dest, model, *slow)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120  # until the run has started: OUT exists
    while time.monotonic() < deadline and proc.poll() is None and not (dest / RUN_FILE).exists():
        time.sleep(0.05)
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=RUN_TIMEOUT)[1].decode("utf-8", "replace")
    tally.runs += 1
    tally.cases["run:terminated"] += 1
    if proc.returncode != 143 or "Traceback" in err:
        tally.violate("wrong-exit", f"terminated: exit {proc.returncode}: {err.strip()[-200:]}")
    leftovers = [k for k in snapshot(dest) if b".partial-" in k] if dest.exists() else []
    if leftovers:
        tally.violate("temp-left", f"terminated: temporary files left: {leftovers[:3]}")
    _nothing_outside_out(tally, "terminated", sandbox)


def expect_run(
    tally: Tally,
    sandbox: Path,
    label: str,
    args: list[str],
    codes: tuple[int, ...],
    words: str = "",
) -> RunResult:
    """One run-level case: its exit status is one of `codes`, exit 2 comes with an error: line."""
    result = run_apply(args, sandbox)
    tally.runs += 1
    tally.cases["run:" + label.split(" ")[0]] += 1
    if "Traceback" in result.err:
        tally.violate("traceback", f"{label}: {result.err.strip().splitlines()[-1][:200]}")
    if result.code not in codes:
        tally.violate(
            "wrong-exit",
            f"{label}: exit {result.code}, expected {codes}: {result.err.strip()[-200:]}",
        )
    elif result.code == 2 and not [
        line for line in result.err.splitlines() if line.startswith("error:")
    ]:
        tally.violate("wrong-exit", f"{label}: exit 2 without an error: line")
    if words and words not in result.err:
        tally.violate("unclear-error", f"{label}: {words!r} not in {result.err.strip()[-200:]!r}")
    return result


def _small_disk(tally: Tally, sandbox: Path, model: Path) -> None:
    """A full disk, then a read-only one (tmpfs mounts: needs root; skipped otherwise):
    exit 2 with one error line, no incomplete file under a final name, and a rerun on a
    larger disk finishes everything."""
    mount = sandbox / "small-disk"
    mount.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=40k", "tmpfs", str(mount)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    if not mounted:
        tally.cases["skipped:full-disk (no tmpfs mount)"] += 1
        return
    try:
        source = sandbox / "in-disk"
        source.mkdir()
        rng = np.random.default_rng(5)
        for index in range(6):
            (source / f"n{index}.png").write_bytes(
                _png(rng.integers(0, 65536, (96, 96), dtype=np.uint16))
            )
        dest = mount / "out"
        expect_run(
            tally,
            sandbox,
            "full-disk",
            apply_args(source, dest, model, "--no-report"),
            (2,),
            "No space left",
        )
        for row in read_records(dest / "manifest.csv"):
            if _output_shape(dest / row["output"]) != (1, (96, 96)):
                tally.violate(
                    "data-loss", f"full disk: recorded output {row['output']} is incomplete"
                )
        subprocess.run(["mount", "-o", "remount,size=4m", str(mount)], check=True)
        expect_run(
            tally,
            sandbox,
            "full-disk-resumed",
            apply_args(source, dest, model, "--no-report"),
            (0,),
        )
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        expect_run(
            tally,
            sandbox,
            "read-only-out",
            apply_args(source, mount / "out2", model),
            (2,),
            "Read-only",
        )
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True, check=False)


def _no_non_finite_outputs(tally: Tally, name: str, dest: Path) -> None:
    from pipeline.io import read_image

    for row in read_records(dest / "manifest.csv"):
        path = dest / row["output"]
        images = read_image(path) if path.is_file() else []
        if any(float(image.pixels.max()) == float(image.pixels.min()) == 0.0 for image in images):
            tally.violate(
                "data-loss", f"checkpoint {name}: black output {row['output']} with a manifest row"
            )


def _concurrent(tally: Tally, sandbox: Path, source: Path, model: Path) -> None:
    """Two runs on one OUT at once: both end 0 (or one refuses with 2); no duplicate rows."""
    big = _small_input(sandbox / "in-many", 12)
    dest = sandbox / "out-concurrent"
    env = {k: v for k, v in os.environ.items() if k != "MPLCONFIGDIR"}
    env.update(
        HOME=str(sandbox / "home"),
        TMPDIR=str(sandbox / "tmp"),
        PYTHONPATH=str(PROJECT),
        OMP_NUM_THREADS="1",
    )
    command = [
        sys.executable,
        "-m",
        "pipeline",
        "apply",
        *apply_args(big, dest, model, "--no-report"),
    ]
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    results = [
        (p.wait(timeout=RUN_TIMEOUT), p.stderr.read().decode("utf-8", "replace")) for p in procs
    ]
    for proc in procs:
        proc.stdout.close()
        proc.stderr.close()
    tally.runs += 2
    tally.cases["run:concurrent"] += 1
    codes = sorted(code for code, _ in results)
    if codes not in ([0, 0], [0, 2]) or any("Traceback" in err for _, err in results):
        tally.violate(
            "concurrent", f"exit codes {codes}: {[err.strip()[-150:] for _, err in results]}"
        )
    rows = read_records(dest / "manifest.csv")
    if len(rows) != len({row["input"] for row in rows}) or len(rows) != 12:
        tally.violate("duplicate-rows", f"concurrent: {len(rows)} manifest rows for 12 inputs")


def _killed(tally: Tally, sandbox: Path, source: Path, model: Path, delays=(2.0, 4.0, 6.0)) -> None:
    """SIGKILL a run at a few moments, rerun: the outputs equal those of an uninterrupted run."""
    big = _small_input(sandbox / "in-kill", 8)
    reference = sandbox / "out-reference"
    run_apply(apply_args(big, reference, model, "--no-report"), sandbox)
    env = {k: v for k, v in os.environ.items() if k != "MPLCONFIGDIR"}
    env.update(
        HOME=str(sandbox / "home"),
        TMPDIR=str(sandbox / "tmp"),
        PYTHONPATH=str(PROJECT),
        OMP_NUM_THREADS="1",
    )
    for delay in delays:
        dest = sandbox / f"out-kill-{delay}"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline",
                "apply",
                *apply_args(big, dest, model, "--no-report"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        result = run_apply(apply_args(big, dest, model, "--no-report"), sandbox)
        tally.runs += 2
        tally.cases["run:killed"] += 1
        same = all(
            (dest / f"i{i}.png").is_file()
            and (dest / f"i{i}.png").read_bytes() == (reference / f"i{i}.png").read_bytes()
            for i in range(8)
        )
        if result.code != 0 or not same:
            tally.violate(
                "killed",
                f"kill after {delay} s: rerun exit {result.code}, outputs identical: {same}",
            )


def campaign(
    cases: int, seed: int, work: Path, per_run: int = FILES_PER_RUN, with_runs: bool = True
) -> Tally:
    """Generate `cases` file cases (plus the structural and run-level ones) and check them all."""
    rng = np.random.default_rng(seed)
    tally = Tally(echo=True)
    model = tiny_checkpoint(work / "tiny.pt")
    file_campaign(tally, file_cases(rng, cases), work, model, per_run)
    if with_runs:
        run_cases(tally, work, model)
    return tally


def format_tally(tally: Tally) -> str:
    total = sum(tally.cases.values())
    lines = [
        f"cases: {total} ({', '.join(f'{k} {v}' for k, v in sorted(tally.cases.items()))})",
        f"apply runs: {tally.runs}",
    ]
    for kind in (
        "data-loss",
        "traceback",
        "wrong-exit",
        "unexpected-error",
        "bad-reason",
        "patient-data",
        "wrote-outside-out",
        "input-changed",
        "temp-left",
        "duplicate-rows",
        "concurrent",
        "killed",
        "timeout",
        "code-ran",
        "unclear-error",
        "wrong-record",
        "wrong-outcome",
    ):
        lines.append(f"{kind}: {tally.outcomes.get(kind, 0)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import logging

    logging.getLogger("tifffile").setLevel(logging.CRITICAL)  # the checks read damaged TIFFs
    logging.getLogger("pipeline").setLevel(logging.ERROR)  # and damaged DICOMs
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cases",
        type=int,
        default=int(os.environ.get("DENOISE_FUZZ_CASES", "700")),
        help="generated file cases (default 700, or $DENOISE_FUZZ_CASES)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--per-run", type=int, default=FILES_PER_RUN, help="files per apply run")
    parser.add_argument(
        "--work", type=Path, help="working folder (default: a temporary one, deleted)"
    )
    parser.add_argument("--no-run-cases", action="store_true", help="file cases only")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="denoise-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        tally = campaign(args.cases, args.seed, work, args.per_run, not args.no_run_cases)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(format_tally(tally))
    print(f"seconds: {time.perf_counter() - start:.0f}")
    return 1 if tally.violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
