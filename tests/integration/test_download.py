"""``kuairec data download`` against a local HTTP server (127.0.0.1 only) serving a zip
built in the test: full download, resume after a cut, servers that ignore Range, size
checks, HTTP errors, zip-slip, corrupt archives and the CLI's messages."""

from __future__ import annotations

import io
import re
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kuairec.cli import main
from kuairec.data.download import download
from kuairec.errors import DataError

TIMEOUT = 5.0
FILES = {
    "KuaiRec 2.0/data/big_matrix.csv": "user_id,video_id\n0,3649\n",
    "KuaiRec 2.0/data/small_matrix.csv": "user_id,video_id\n14,148\n",
    "KuaiRec 2.0/loaddata.py": "print('hi')\n",
}


def make_zip(files: dict[str, str], stored: bool = False) -> bytes:
    buf = io.BytesIO()
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, text in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2022, 1, 1, 0, 0, 0)), text)
    return buf.getvalue()


class Handler(BaseHTTPRequestHandler):
    """Serves ``server.payload`` with Range support; knobs live on the server object."""

    def log_message(self, *_args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        srv = self.server
        srv.seen_ranges.append(self.headers.get("Range"))
        if srv.status is not None:
            self.send_error(srv.status)
            return
        data = srv.payload
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and not srv.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        if not srv.no_length:  # else HTTP/1.0 close-delimited: the size is unknown
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut, srv.cut_after = srv.cut_after, None  # cut only the first response
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture()
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.payload = make_zip(FILES)
    srv.seen_ranges = []
    srv.status = None
    srv.ignore_range = False
    srv.cut_after = None
    srv.no_length = False
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/KuaiRec.zip"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=TIMEOUT)


def fetch(srv, to: Path, **kwargs) -> Path:
    kwargs.setdefault("progress", False)
    return download(srv.url, to, timeout=TIMEOUT, **kwargs)


def test_full_download_unzips_and_returns_the_data_folder(server, tmp_path):
    out = fetch(server, tmp_path / "dl")
    assert out == tmp_path / "dl" / "KuaiRec 2.0" / "data"
    assert (out / "big_matrix.csv").read_text() == "user_id,video_id\n0,3649\n"
    assert (out / "small_matrix.csv").read_text() == "user_id,video_id\n14,148\n"
    assert (tmp_path / "dl" / "KuaiRec.zip").read_bytes() == server.payload
    assert not (tmp_path / "dl" / "KuaiRec.zip.part").exists()
    leftovers = [p.name for p in (tmp_path / "dl").iterdir()]
    assert sorted(leftovers) == ["KuaiRec 2.0", "KuaiRec.zip"]  # no temp folder left
    assert server.seen_ranges == [None]
    # a second call finds the data and asks the server nothing
    assert fetch(server, tmp_path / "dl") == out
    assert server.seen_ranges == [None]


def test_interrupted_download_keeps_part_and_resumes_with_range(server, tmp_path):
    to = tmp_path / "dl"
    server.cut_after = 100
    with pytest.raises(DataError, match=r"expected [\d,]+ bytes, got 100; re-run to resume"):
        fetch(server, to)
    part = to / "KuaiRec.zip.part"
    assert part.read_bytes() == server.payload[:100]
    assert not (to / "KuaiRec.zip").exists()

    out = fetch(server, to)
    assert server.seen_ranges == [None, "bytes=100-"]
    assert (to / "KuaiRec.zip").read_bytes() == server.payload
    assert (out / "big_matrix.csv").read_text() == FILES["KuaiRec 2.0/data/big_matrix.csv"]
    assert not part.exists()


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    to = tmp_path / "dl"
    server.cut_after = 64
    with pytest.raises(DataError):
        fetch(server, to, unzip=False)
    server.ignore_range = True
    path = fetch(server, to, unzip=False)
    assert server.seen_ranges == [None, "bytes=64-"]
    assert path == to / "KuaiRec.zip"
    assert path.read_bytes() == server.payload  # rewritten from byte 0, not appended


def test_complete_part_with_416_is_finished_without_refetching(server, tmp_path):
    to = tmp_path / "dl"
    to.mkdir()
    (to / "KuaiRec.zip.part").write_bytes(server.payload)  # crashed before the rename
    path = fetch(server, to, unzip=False)
    assert server.seen_ranges == [f"bytes={len(server.payload)}-"]
    assert path.read_bytes() == server.payload


def test_size_announced_by_server_differs_from_expected(server, tmp_path):
    to = tmp_path / "dl"
    n = len(server.payload)
    with pytest.raises(DataError) as info:
        fetch(server, to, expected_size=n + 7)
    msg = str(info.value)
    assert msg.startswith(str(to / "KuaiRec.zip.part"))
    assert f"serves {n:,} bytes but {n + 7:,} were expected" in msg and server.url in msg
    assert not (to / "KuaiRec.zip").exists()


def test_size_checked_after_download_without_content_length(server, tmp_path):
    to = tmp_path / "dl"
    server.no_length = True
    n = len(server.payload)
    with pytest.raises(DataError) as info:
        fetch(server, to, expected_size=n + 7)
    assert str(info.value) == (
        f"{to / 'KuaiRec.zip.part'}: download incomplete: expected {n + 7:,} bytes, "
        f"got {n:,}; re-run to resume"
    )
    assert (to / "KuaiRec.zip.part").read_bytes() == server.payload  # kept for resuming
    assert not (to / "KuaiRec.zip").exists()
    # with the right size (and still no Content-Length) the same .part completes
    server.seen_ranges.clear()
    out = fetch(server, to, expected_size=n)
    assert server.seen_ranges == []  # .part already had n bytes: renamed, not refetched
    assert (out / "big_matrix.csv").is_file()


def test_existing_zip_of_wrong_size_is_refused(server, tmp_path):
    to = tmp_path / "dl"
    to.mkdir()
    (to / "KuaiRec.zip").write_bytes(b"x" * 10)
    with pytest.raises(DataError, match=r"KuaiRec\.zip: already exists with 10 bytes, expected 11"):
        fetch(server, to, expected_size=11)
    assert server.seen_ranges == []


def test_http_404_is_a_one_line_data_error(server, tmp_path):
    server.status = 404
    with pytest.raises(DataError) as info:
        fetch(server, tmp_path / "dl")
    msg = str(info.value)
    assert "HTTP 404" in msg and server.url in msg and "\n" not in msg


def test_unreachable_server_is_a_data_error(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # a port nobody listens on
    port = sock.getsockname()[1]
    sock.close()
    url = f"http://127.0.0.1:{port}/KuaiRec.zip"
    with pytest.raises(DataError, match=f"cannot reach {re.escape(url)}"):
        download(url, tmp_path, progress=False, timeout=TIMEOUT)


@pytest.mark.parametrize("bad", ["../evil.csv", "/abs/evil.csv", "KuaiRec 2.0/../../evil.csv"])
def test_zip_slip_member_is_refused(server, tmp_path, bad):
    server.payload = make_zip({**FILES, bad: "pwned"})
    to = tmp_path / "a" / "dl"
    with pytest.raises(DataError, match="unsafe member"):
        fetch(server, to)
    assert not list(tmp_path.rglob("evil.csv"))
    assert sorted(p.name for p in to.iterdir()) == ["KuaiRec.zip"]


def test_not_a_zip_is_a_data_error(server, tmp_path):
    server.payload = b"<html>not found</html>" * 20
    with pytest.raises(DataError, match="KuaiRec.zip: not a valid zip archive.*delete it"):
        fetch(server, tmp_path / "dl")


def test_corrupt_member_leaves_no_partial_folder(server, tmp_path):
    payload = bytearray(make_zip(FILES, stored=True))
    pos = payload.index(b"0,3649")  # stored: the CSV bytes are in the zip as-is
    payload[pos] = ord("9")  # CRC no longer matches
    server.payload = bytes(payload)
    to = tmp_path / "dl"
    with pytest.raises(DataError, match="not a valid zip archive"):
        fetch(server, to)
    assert sorted(p.name for p in to.iterdir()) == ["KuaiRec.zip"]


def test_zip_without_big_matrix_is_refused(server, tmp_path):
    server.payload = make_zip({"other/readme.txt": "hello"})
    with pytest.raises(DataError, match="holds no big_matrix.csv"):
        fetch(server, tmp_path / "dl")


def test_cli_download_prints_the_folder(server, tmp_path, capsys):
    to = tmp_path / "dl"
    rc = main(["data", "download", "--to", str(to), "--url", server.url])
    captured = capsys.readouterr()
    assert rc == 0
    assert captured.out.strip() == f"data ready in {to / 'KuaiRec 2.0' / 'data'}"


def test_cli_download_error_is_one_stderr_line(server, tmp_path, capsys):
    server.status = 500
    rc = main(["data", "download", "--to", str(tmp_path / "dl"), "--url", server.url])
    captured = capsys.readouterr()
    assert rc == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: download of ")
    assert "HTTP 500" in lines[0] and "Traceback" not in captured.err
