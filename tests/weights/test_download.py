"""Fetching official files over a local HTTP server: cache hits, resumes, and every way a download goes wrong."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from detcli.cli import cli
from engine.weights import UnknownWeights, WeightsCorrupt, WeightsUnavailable, resolve_weights
from engine.weights.cache import recorded_sha256, sha256_file
from engine.weights.download import part_path


def test_download_then_cache_hit(server, weights_cache):
    got = resolve_weights("dfine-n-coco", mirror=server.url, progress=False)
    assert got.path == weights_cache / "dfine_n_coco.pth"
    assert got.path.read_bytes() == server.files["dfine_n_coco.pth"]
    assert got.sha256 == sha256_file(got.path) == recorded_sha256(got.path)
    assert not part_path(got.path).exists()
    n = len(server.requests)
    again = resolve_weights("dfine-n-coco", mirror=server.url, progress=False)
    assert again.source == "cache" and again.sha256 == got.sha256
    assert len(server.requests) == n  # nothing fetched the second time


def test_dropped_connection_resumes_with_range(server, weights_cache):
    server.mode["dfine_n_coco.pth"] = "drop"
    size = len(server.files["dfine_n_coco.pth"])
    got = resolve_weights("dfine-n-coco", mirror=server.url, progress=False)
    assert got.path.read_bytes() == server.files["dfine_n_coco.pth"]
    ranges = [r for _, r in server.requests]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    assert got.bytes_fetched == size  # every byte exactly once: the resume asked only for the rest
    assert server.sent < 1.5 * size


def test_resume_across_calls_keeps_the_part(server, weights_cache):
    server.mode["dfine_n_coco.pth"] = "drop"
    with pytest.raises(WeightsUnavailable, match="resumes"):
        resolve_weights("dfine-n-coco", mirror=server.url, progress=False, retries=0)
    part = part_path(weights_cache / "dfine_n_coco.pth")
    assert 0 < part.stat().st_size < len(server.files["dfine_n_coco.pth"])
    assert not (weights_cache / "dfine_n_coco.pth").exists()  # never a half file under the real name
    got = resolve_weights("dfine-n-coco", mirror=server.url, progress=False)
    assert got.path.read_bytes() == server.files["dfine_n_coco.pth"]
    assert server.sent < 1.5 * len(server.files["dfine_n_coco.pth"])


def test_checksum_mismatch_removes_the_file(server, weights_cache):
    # dfine_s_obj2coco.pth has a published SHA-256; a different file under its name must not survive
    server.files["dfine_s_obj2coco.pth"] = server.files["dfine_n_coco.pth"]
    with pytest.raises(WeightsCorrupt, match="SHA-256"):
        resolve_weights("dfine-s-obj2coco", mirror=server.url, progress=False)
    assert not (weights_cache / "dfine_s_obj2coco.pth").exists()


def test_cached_file_changed_since_first_download_is_refused(server, weights_cache):
    got = resolve_weights("dfine-n-coco", mirror=server.url, progress=False)
    data = bytearray(got.path.read_bytes())
    data[-100] ^= 0xFF
    got.path.write_bytes(bytes(data))
    with pytest.raises(WeightsCorrupt, match="first download"):
        resolve_weights("dfine-n-coco", mirror=server.url, progress=False)
    assert not got.path.exists() and recorded_sha256(got.path) is None


def test_truncated_file_is_refused(server, weights_cache):
    server.mode["dfine_n_coco.pth"] = "truncated"  # a short file whose Content-Length agrees with it
    with pytest.raises(WeightsCorrupt, match="not a PyTorch checkpoint"):
        resolve_weights("dfine-n-coco", mirror=server.url, progress=False)
    assert not any(weights_cache.iterdir())


def test_html_page_is_refused(server, weights_cache):
    server.mode["dfine_n_coco.pth"] = "html"
    with pytest.raises(WeightsCorrupt, match="web page"):
        resolve_weights("dfine-n-coco", mirror=server.url, progress=False)
    assert not any(weights_cache.glob("dfine_n_coco.pth*"))


def test_nothing_listening_exit_1_names_url_and_where_to_put_it(weights_cache):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mirror = f"http://127.0.0.1:{port}/w"
    r = CliRunner().invoke(cli, ["weights", "download", "dfine-n-coco", "--mirror", mirror])
    assert r.exit_code == 1, r.output
    assert f"{mirror}/dfine_n_coco.pth" in r.output
    assert str(weights_cache / "dfine_n_coco.pth") in r.output
    assert "Traceback" not in r.output


def test_misspelt_name_exit_2_with_did_you_mean(weights_cache):
    r = CliRunner().invoke(cli, ["weights", "download", "dfine-s-cocoo"])
    assert r.exit_code == 2
    assert "did you mean dfine-s-coco" in r.output
    with pytest.raises(UnknownWeights, match="did you mean"):
        resolve_weights("hgnetv2-bO")


def test_cli_download_list_path(server, weights_cache):
    runner = CliRunner()
    r = runner.invoke(cli, ["weights", "download", "dfine-n-coco", "hgnetv2-b0", "--mirror", server.url])
    assert r.exit_code == 0, r.output
    digest = sha256_file(weights_cache / "dfine_n_coco.pth")
    assert f"sha256 {digest}" in r.output
    r = runner.invoke(cli, ["weights", "path", "hgnetv2-b0"])
    assert r.exit_code == 0 and r.output.strip() == str(weights_cache / "PPHGNetV2_B0_stage1.pth")
    r = runner.invoke(cli, ["weights", "list"])
    assert r.exit_code == 0 and digest[:12] in r.output
    r = runner.invoke(cli, ["weights", "path", "dfine-s-coco"])
    assert r.exit_code == 1


def test_mirror_from_environment(server, weights_cache, monkeypatch):
    monkeypatch.setenv("DETCLI_WEIGHTS_MIRROR", server.url)
    got = resolve_weights("hgnetv2-b0", progress=False)
    assert got.source == f"{server.url}/PPHGNetV2_B0_stage1.pth"


def test_file_dropped_into_the_cache_by_hand_is_checked_then_used(nano_files, weights_cache):
    dest = weights_cache / "PPHGNetV2_B0_stage1.pth"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(nano_files["PPHGNetV2_B0_stage1.pth"].read_bytes())
    got = resolve_weights("hgnetv2-b0", download=False)
    assert got.source == "cache" and recorded_sha256(dest) == got.sha256
    (weights_cache / "dfine_n_coco.pth").write_text("<html>login</html>")
    with pytest.raises(WeightsCorrupt, match="not a PyTorch checkpoint"):
        resolve_weights("dfine-n-coco", download=False)
    assert not (weights_cache / "dfine_n_coco.pth").exists()
