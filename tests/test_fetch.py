"""fetch_dataset against a local HTTP server (127.0.0.1) serving files the tests build."""

from __future__ import annotations

import gzip
import hashlib
import io
import socket
import struct
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.errors import PipelineError
from pipeline.ingest.fetch import RemoteFile, extract_archive, fetch_dataset


class _Server:
    """Serves `files` (name -> bytes) with Range support and records every request."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.honour_range = True
        self.cut_after: int | None = None  # send only this many body bytes, then hang up
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                rng = self.headers.get("Range")
                outer.requests.append((name, rng))
                data = outer.files.get(name)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                if rng and outer.honour_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                    body = data[start:]
                else:
                    self.send_response(200)
                    body = data
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if outer.cut_after is None else body[: outer.cut_after])

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = _Server()
    yield srv
    srv.close()


def _idx_gz(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def mnist_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 28, 28))
    labels = np.array([1, 2, 3])
    return {
        "train-images-idx3-ubyte.gz": _idx_gz(images),
        "train-labels-idx1-ubyte.gz": _idx_gz(labels),
        "t10k-images-idx3-ubyte.gz": _idx_gz(images[:2]),
        "t10k-labels-idx1-ubyte.gz": _idx_gz(labels[:2]),
    }


def _manifest(files: dict[str, bytes]) -> list[RemoteFile]:
    return [RemoteFile(name, md5=_md5(data)) for name, data in files.items()]


def _tgz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_mnist_download_verifies_and_loads(server, mnist_files, tmp_path):
    from pipeline.ingest.mnist import read_idx

    server.files.update(mnist_files)
    dest = fetch_dataset(
        "mnist",
        tmp_path / "mnist",
        base_url=server.url,
        progress=False,
        manifest=_manifest(mnist_files),
    )
    for name, data in mnist_files.items():
        assert (dest / name).read_bytes() == data
        assert not (dest / (name + ".part")).exists()
    assert read_idx(dest / "train-images-idx3-ubyte.gz").shape == (3, 28, 28)
    sums = (dest / "SHA256SUMS").read_text()
    assert hashlib.sha256(mnist_files["t10k-labels-idx1-ubyte.gz"]).hexdigest() in sums
    # A second call finds everything present and asks the server for nothing.
    n = len(server.requests)
    fetch_dataset(
        "mnist", dest, base_url=server.url, progress=False, manifest=_manifest(mnist_files)
    )
    assert len(server.requests) == n


def test_resume_from_part_file_uses_range(server, mnist_files, tmp_path):
    name = "train-images-idx3-ubyte.gz"
    data = mnist_files[name]
    server.files[name] = data
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / (name + ".part")).write_bytes(data[:1000])
    fetch_dataset(
        "mnist",
        dest,
        base_url=server.url,
        progress=False,
        manifest=[RemoteFile(name, md5=_md5(data))],
    )
    assert (dest / name).read_bytes() == data
    assert server.requests == [(name, "bytes=1000-")]


def test_interrupted_download_resumes_on_next_call(server, mnist_files, tmp_path):
    name = "t10k-images-idx3-ubyte.gz"
    data = mnist_files[name]
    server.files[name] = data
    server.cut_after = 700
    manifest = [RemoteFile(name, md5=_md5(data))]
    dest = tmp_path / "d"
    with pytest.raises(PipelineError, match="interrupted|incomplete") as info:
        fetch_dataset("mnist", dest, base_url=server.url, progress=False, manifest=manifest)
    assert server.url + name in str(info.value)
    assert (dest / (name + ".part")).read_bytes() == data[:700] and not (dest / name).exists()
    server.cut_after = None
    fetch_dataset("mnist", dest, base_url=server.url, progress=False, manifest=manifest)
    assert (dest / name).read_bytes() == data
    assert server.requests == [(name, None), (name, "bytes=700-")]


def test_resume_when_server_ignores_range(server, mnist_files, tmp_path):
    name = "train-labels-idx1-ubyte.gz"
    data = mnist_files[name]
    server.files[name] = data
    server.honour_range = False
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / (name + ".part")).write_bytes(b"garbage")
    fetch_dataset(
        "mnist",
        dest,
        base_url=server.url,
        progress=False,
        manifest=[RemoteFile(name, md5=_md5(data))],
    )
    assert (dest / name).read_bytes() == data


def test_complete_part_file_is_finished_on_416(server, mnist_files, tmp_path):
    name = "t10k-labels-idx1-ubyte.gz"
    data = mnist_files[name]
    server.files[name] = data
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / (name + ".part")).write_bytes(data)
    fetch_dataset(
        "mnist",
        dest,
        base_url=server.url,
        progress=False,
        manifest=[RemoteFile(name, md5=_md5(data))],
    )
    assert (dest / name).read_bytes() == data


def test_checksum_mismatch_deletes_file(server, mnist_files, tmp_path):
    name = "t10k-images-idx3-ubyte.gz"
    server.files[name] = mnist_files[name]
    dest = tmp_path / "d"
    with pytest.raises(PipelineError, match="checksum mismatch") as info:
        fetch_dataset(
            "mnist",
            dest,
            base_url=server.url,
            progress=False,
            manifest=[RemoteFile(name, md5="0" * 32)],
        )
    assert server.url + name in str(info.value)
    assert not (dest / name).exists() and not (dest / (name + ".part")).exists()


def test_env_var_base_url_and_http_error(server, tmp_path, monkeypatch):
    monkeypatch.setenv("DENOISE_DATA_URL", server.url.rstrip("/"))
    with pytest.raises(PipelineError, match=r"HTTP 404") as info:
        fetch_dataset("mnist", tmp_path / "d", progress=False, manifest=[RemoteFile("missing.gz")])
    assert server.url + "missing.gz" in str(info.value)
    assert server.requests == [("missing.gz", None)]


def test_unreachable_server(tmp_path):
    with socket.socket() as sock:  # a port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    with pytest.raises(PipelineError, match="could not reach") as info:
        fetch_dataset(
            "mnist", tmp_path / "d", base_url=url, progress=False, manifest=[RemoteFile("a.gz")]
        )
    assert url + "a.gz" in str(info.value)


def test_unknown_dataset(tmp_path):
    with pytest.raises(PipelineError, match="unknown data set"):
        fetch_dataset("cifar", tmp_path)


def test_openi_archives_extract_into_loader_layout(server, tmp_path):
    from pipeline.ingest.openi import find_openi_images

    xml = b'<eCitation><uId id="CXR1"/><parentImage id="CXR1_IM-0001-1001"/></eCitation>'
    server.files["NLMCXR_png.tgz"] = _tgz(
        {"CXR1_IM-0001-1001.png": _png(10), "CXR2_IM-0002-1001.png": _png(20)}
    )
    server.files["NLMCXR_reports.tgz"] = _tgz({"ecgen-radiology/1.xml": xml})
    manifest = [
        RemoteFile("NLMCXR_png.tgz", extract_to="NLMCXR_png"),
        RemoteFile("NLMCXR_reports.tgz", extract_to="ecgen-radiology"),
    ]
    dest = fetch_dataset(
        "openi", tmp_path / "nlm", base_url=server.url, progress=False, manifest=manifest
    )
    assert (dest / "NLMCXR_png" / "CXR2_IM-0002-1001.png").is_file()
    assert (dest / "ecgen-radiology" / "1.xml").read_bytes() == xml
    sums = (dest / "SHA256SUMS").read_text()
    assert hashlib.sha256(server.files["NLMCXR_png.tgz"]).hexdigest() in sums
    assert [r.report_id for r in find_openi_images(dest)] == [1, 2]
    n = len(server.requests)
    fetch_dataset("openi", dest, base_url=server.url, progress=False, manifest=manifest)
    assert len(server.requests) == n


def test_traversal_archive_refused(server, tmp_path):
    server.files["NLMCXR_png.tgz"] = _tgz({"ok.png": _png(1), "../evil.png": _png(2)})
    dest = tmp_path / "nlm"
    with pytest.raises(PipelineError, match="refusing to extract.*'\\.\\./evil.png'"):
        fetch_dataset(
            "openi",
            dest,
            base_url=server.url,
            progress=False,
            manifest=[RemoteFile("NLMCXR_png.tgz", extract_to="NLMCXR_png")],
        )
    assert not (dest / "evil.png").exists() and not (tmp_path / "evil.png").exists()
    assert not (dest / ".NLMCXR_png.tgz.extracted").exists()


@pytest.mark.parametrize("kind", ["absolute", "symlink"])
def test_extract_refuses_absolute_and_escaping_links(tmp_path, kind):
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tar:
        if kind == "absolute":
            info = tarfile.TarInfo(str(tmp_path / "abs.txt"))
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        else:
            info = tarfile.TarInfo("link")
            info.type = tarfile.SYMTYPE
            info.linkname = "../../outside"
            tar.addfile(info)
    with pytest.raises(PipelineError, match="refusing to extract"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "abs.txt").exists()


def test_extract_strips_matching_top_folder(tmp_path):
    archive = tmp_path / "a.tgz"
    archive.write_bytes(_tgz({"NLMCXR_dcm/1_IM-0001-1001.dcm": b"x", "NLMCXR_dcm/sub/2.dcm": b"y"}))
    assert extract_archive(archive, tmp_path / "NLMCXR_dcm", strip_top="NLMCXR_dcm") == 2
    assert (tmp_path / "NLMCXR_dcm" / "1_IM-0001-1001.dcm").read_bytes() == b"x"
    assert (tmp_path / "NLMCXR_dcm" / "sub" / "2.dcm").read_bytes() == b"y"


def test_corrupt_archive_is_a_clear_error(tmp_path):
    archive = tmp_path / "broken.tgz"
    archive.write_bytes(b"not a tar file at all")
    with pytest.raises(PipelineError, match="not a readable archive"):
        extract_archive(archive, tmp_path / "out")


def test_builtin_manifest_checksums_are_well_formed():
    from pipeline.ingest.fetch import DATASETS

    names = [f.name for f in DATASETS["mnist"].files]
    assert names == [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    assert all(f.md5 and len(f.md5) == 32 and int(f.md5, 16) >= 0 for f in DATASETS["mnist"].files)
    assert {f.name for f in DATASETS["openi"].files} == {
        "NLMCXR_png.tgz",
        "NLMCXR_reports.tgz",
        "NLMCXR_dcm.tgz",
    }


def test_builtin_md5_matches_shared_copies(shared_data: Path):
    """The official files kept in ../shared/data/mnist match the manifest's md5s."""
    from pipeline.ingest.fetch import DATASETS, file_digests

    checked = 0
    for remote in DATASETS["mnist"].files:
        local = shared_data / "mnist" / remote.name
        if local.is_file():
            assert file_digests(local)["md5"] == remote.md5
            checked += 1
    assert checked >= 3
