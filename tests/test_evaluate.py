"""Evaluation: same noise for every method, resume after interruption, real data ranges."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from pipeline.baselines import make_baseline
from pipeline.denoiser import NoisyInput
from pipeline.evaluate import (
    append_metrics_row,
    evaluate,
    read_metrics_csv,
    write_metrics_csv,
)
from pipeline.image import ScanImage
from pipeline.io import read_image
from pipeline.metrics import psnr, ssim
from pipeline.noise import GaussianNoise


@dataclass
class Recorder:
    """A test denoiser that records what it is given and returns its input."""

    name: str
    takes: tuple[str, ...] = ()
    kind: str = "baseline"
    calls: list[tuple[np.ndarray, dict]] = field(default_factory=list)

    def __call__(self, image: np.ndarray, **noise) -> np.ndarray:
        self.calls.append((image.copy(), noise))
        return image


def images(smooth_image: np.ndarray, n: int = 3) -> list[ScanImage]:
    return [ScanImage(np.roll(smooth_image, 7 * i, axis=1)) for i in range(n)]


def test_every_method_sees_the_same_noisy_image(tmp_path, smooth_image) -> None:
    a, b = Recorder("a"), Recorder("b")
    evaluate(images(smooth_image), GaussianNoise(0.1), 0, [a, b], tmp_path, progress=False)
    assert all(np.array_equal(x, y) for (x, _), (y, _) in zip(a.calls, b.calls))
    assert not np.array_equal(a.calls[0][0], a.calls[1][0])


def test_rows_match_metrics_and_baseline_improves(tmp_path, smooth_image) -> None:
    result = evaluate(
        images(smooth_image),
        GaussianNoise(0.1),
        0,
        [NoisyInput(), make_baseline("tv")],
        tmp_path,
        progress=False,
    )
    rows = read_metrics_csv(tmp_path / "metrics.csv")
    assert len(rows) == 6 and len(result.examples) == 3
    by = {(r["image"], r["method"]): r for r in rows}
    for img_id in {r["image"] for r in rows}:
        assert by[(img_id, "tv")]["psnr"] > by[(img_id, "noisy")]["psnr"] + 2
    example = result.examples[0]
    assert (
        abs(
            psnr(example["clean"], example["noisy"], data_range=1.0)
            - by[(example["image"], "noisy")]["psnr"]
        )
        < 1e-9
    )


@dataclass
class BatchRecorder(Recorder):
    """A test model that can take a batch; records the batch sizes it was given."""

    batches: list[int] = field(default_factory=list)

    def denoise_many(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        self.batches.append(len(batch))
        return [image * 0.5 for image in batch]


def test_models_run_on_batches_and_share_the_batch_time(tmp_path, smooth_image) -> None:
    model = BatchRecorder("m", kind="model")
    evaluate(
        images(smooth_image, 5),
        GaussianNoise(0.1),
        0,
        [NoisyInput(), model],
        tmp_path,
        n_examples=1,
        progress=False,
    )
    assert model.batches == [5] and model.calls == []  # one batch, never one image at a time
    rows = [r for r in read_metrics_csv(tmp_path / "metrics.csv") if r["method"] == "m"]
    assert len(rows) == 5 and len({r["seconds"] for r in rows}) == 1
    evaluate(
        images(smooth_image, 7),
        GaussianNoise(0.1),
        0,
        [model],
        tmp_path,
        n_examples=1,
        progress=False,
    )
    assert model.batches == [5, 3], "a rerun batches the two new images and the example only"


def test_interrupted_evaluation_resumes_without_recomputing(tmp_path, smooth_image) -> None:
    counting = Recorder("m", kind="model")
    evaluate(
        images(smooth_image, 2),
        GaussianNoise(0.1),
        0,
        [counting],
        tmp_path,
        n_examples=0,
        progress=False,
    )
    assert len(counting.calls) == 2
    evaluate(
        images(smooth_image, 4),
        GaussianNoise(0.1),
        0,
        [counting],
        tmp_path,
        n_examples=0,
        progress=False,
    )
    assert len(counting.calls) == 4, "the two images already in metrics.csv must be skipped"
    assert len(read_metrics_csv(tmp_path / "metrics.csv")) == 4


class CountingNoise(GaussianNoise):
    """Gaussian noise that counts the images it was asked to corrupt."""

    drawn = 0

    def __call__(self, clean, rng):
        CountingNoise.drawn += 1
        return super().__call__(clean, rng)


def test_images_whose_rows_are_all_written_draw_no_noise(tmp_path, smooth_image) -> None:
    counting = Recorder("m", kind="model")
    evaluate(
        images(smooth_image, 3),
        CountingNoise(0.1),
        0,
        [counting],
        tmp_path,
        n_examples=0,
        progress=False,
    )
    CountingNoise.drawn = 0
    evaluate(
        images(smooth_image, 3),
        CountingNoise(0.1),
        0,
        [counting],
        tmp_path,
        n_examples=0,
        progress=False,
    )
    assert CountingNoise.drawn == 0 and len(counting.calls) == 3, (
        "a rerun over finished rows does no work"
    )
    evaluate(
        images(smooth_image, 3),
        CountingNoise(0.1),
        0,
        [counting, Recorder("new")],
        tmp_path,
        n_examples=0,
        progress=False,
    )
    assert CountingNoise.drawn == 3 and len(counting.calls) == 3, (
        "a new method: noise drawn again, the old one not rerun"
    )
    rows = read_metrics_csv(tmp_path / "metrics.csv")
    first, new = ([r for r in rows if r["method"] == name] for name in ("m", "new"))
    assert [r["psnr"] for r in first] == [r["psnr"] for r in new], (
        "the same seeded noise as the first time"
    )


def write_12bit_dicom(path, values: np.ndarray) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID = "OT", "P1"
    ds.Rows, ds.Columns = values.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = values.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_12bit_data_in_uint16_uses_range_4095(tmp_path, rng) -> None:
    clean = rng.integers(500, 3500, (48, 48)).astype(np.uint16)
    noisy = np.clip(clean + rng.normal(0, 100, clean.shape), 0, 4095).astype(np.uint16)
    write_12bit_dicom(tmp_path / "clean.dcm", clean)
    write_12bit_dicom(tmp_path / "noisy.dcm", noisy)
    a, b = read_image(tmp_path / "clean.dcm")[0], read_image(tmp_path / "noisy.dcm")[0]
    assert a.meta.bits_stored == 12 and pydicom.dcmread(tmp_path / "clean.dcm").BitsStored == 12
    in_pipeline = psnr(a.pixels, b.pixels, data_range=1.0)
    on_stored = psnr(clean.astype(float), noisy.astype(float), data_range=4095)
    wrong = psnr(clean.astype(float), noisy.astype(float), data_range=65535)
    assert abs(in_pipeline - on_stored) < 1e-4
    assert abs(wrong - on_stored - 20 * np.log10(65535 / 4095)) < 1e-9
    assert (
        abs(
            ssim(a.pixels, b.pixels, data_range=1.0)
            - ssim(clean.astype(float), noisy.astype(float), data_range=4095)
        )
        < 1e-4
    )


def _metric_rows() -> list[dict]:
    """Twelve metric rows: three images by four methods."""
    methods = ("noisy", "tv", "bm3d", "model")
    return [
        {
            "image": f"{i:03d}",
            "method": m,
            "psnr": 10.0 + 2.5 * k + i,
            "ssim": 0.2 * k + 0.05 * i,
            "seconds": 0.5 * k,
        }
        for k, m in enumerate(methods)
        for i in range(3)
    ]


def test_csv_append_resume_keeps_rows(tmp_path):
    path = tmp_path / "metrics.csv"
    rows = _metric_rows()
    for row in rows[:5]:
        append_metrics_row(row, path)
    with path.open("a") as f:  # an interrupted write leaves half a row
        f.write("002,tv,15.")
    for row in rows[5:]:
        append_metrics_row(row, path)
    back = read_metrics_csv(path)
    assert back == rows
    assert path.read_text().count("image,method") == 1
    assert back[0]["image"] == "000"  # ids stay strings


def test_csv_new_column_widens_header(tmp_path):
    path = tmp_path / "metrics.csv"
    append_metrics_row(
        {"image": "a", "method": "tv", "psnr": 0.1 + 0.2, "ssim": 0.5, "seconds": 1}, path
    )
    append_metrics_row(
        {"image": "b", "method": "bm3d", "psnr": 20.0, "ssim": 0.7, "seconds": 2.5, "sigma": 0.1},
        path,
    )
    back = read_metrics_csv(path)
    assert back[0]["psnr"] == 0.1 + 0.2 and back[0]["sigma"] is None
    assert back[1]["sigma"] == 0.1
    write_metrics_csv(back, path)
    assert read_metrics_csv(path) == back


def test_correlated_noise_gives_baselines_its_psd_and_rows_say_so(tmp_path, smooth_image) -> None:
    from pipeline.evaluate import noise_given_by_method
    from pipeline.noise import XrayNoise

    bm3d = Recorder("bm3d", takes=("psd", "sigma"))
    methods = [NoisyInput(), bm3d, make_baseline("tv")]
    rows = evaluate(
        images(smooth_image, 2), XrayNoise(dose=0.25), 0, methods, tmp_path / "x", progress=False
    ).rows
    assert [(list(noise), noise["psd"].shape) for _, noise in bm3d.calls] == [
        (["psd"], smooth_image.shape)
    ] * 2
    assert noise_given_by_method(rows) == {"bm3d": "psd", "tv": "sigma"}
    from pipeline.evaluate import read_spectra

    spectra = read_spectra(tmp_path / "x" / "spectra.jsonl")
    assert set(spectra) == {(r["image"], r["method"]) for r in rows}, "a spectrum per row"
    kept = {r["method"]: r["detail_kept"] for r in rows}
    assert kept["noisy"] == pytest.approx(1.0, abs=0.1), "noise left in does not bias detail kept"
    assert kept["tv"] < kept["noisy"], "a smoother keeps less"
    bm3d.calls.clear()
    rows = evaluate(
        images(smooth_image, 2), GaussianNoise(0.1), 0, methods, tmp_path / "g", progress=False
    ).rows
    assert [list(noise) for _, noise in bm3d.calls] == [["sigma"]] * 2 and noise_given_by_method(
        rows
    )["bm3d"] == "sigma"
