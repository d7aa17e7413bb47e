"""Fixtures for the weights tests. A local HTTP server (a thread on 127.0.0.1) serving weights files the way a release host does, or badly."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class WeightsServer:
    """Serves `files` by name; `mode[name]` makes one misbehave: drop, html, truncated, no-range."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.mode: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.sent = 0  # body bytes written, all requests together
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                mode = server.mode.get(name, "ok")
                if mode == "html" or name not in server.files:
                    body = b"<html><body>Not Found</body></html>"
                    self.send_response(200 if mode == "html" else 404)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                data = server.files[name]
                if mode == "truncated":
                    data = data[: len(data) // 2]
                start = 0
                if rng and mode != "no-range":
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if mode == "drop" and start == 0:
                    # the first request dies at 60% of the file; the Range request that follows completes it
                    body = body[: int(len(body) * 0.6)]
                    self.wfile.write(body)
                    server.sent += len(body)
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)
                server.sent += len(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/dfinev1.0"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> WeightsServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def weights_cache(tmp_path, monkeypatch):
    """An empty weights cache, and no mirror from the environment."""
    cache = tmp_path / "weights-cache"
    monkeypatch.setenv("DETCLI_WEIGHTS_DIR", str(cache))
    monkeypatch.delenv("DETCLI_WEIGHTS_MIRROR", raising=False)
    return cache


@pytest.fixture(scope="session")
def nano_files(tmp_path_factory):
    """Files made from our own dfine-n (random weights) in the official layouts: {'model'}, {'ema': {'module'}},
    and the backbone alone in the ImageNet stage-1 layout (`stem.*`, `stages.*`)."""
    import torch

    from engine.models import build_model

    torch.manual_seed(0)
    sd = build_model("dfine-n", num_classes=80).state_dict()
    out = tmp_path_factory.mktemp("official")
    layouts = {
        "dfine_n_coco.pth": {"model": sd},
        "ema_layout.pth": {"ema": {"module": sd, "updates": 10}},
        "PPHGNetV2_B0_stage1.pth": {
            k[len("backbone.") :]: v for k, v in sd.items() if k.startswith("backbone.")
        },
    }
    paths = {}
    for name, obj in layouts.items():
        torch.save(obj, out / name)
        paths[name] = out / name
    return paths


@pytest.fixture()
def server(nano_files):
    """A running WeightsServer holding the nano files under their official names."""
    with WeightsServer() as srv:
        for name, path in nano_files.items():
            srv.files[name] = path.read_bytes()
        yield srv
