"""The installer's refusals: one error line, a non-zero exit, and nothing left under the root —
for a missing flag, an unreachable proxy, a refused registration token and a damaged artifact."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from hrw_api import names
from hrw_api.errors import NotFound
from hrw_api.kubeclient import SECRETS
from tests.install.conftest import run_install
from tests.support.proxy import ProxyTLS
from tests.support.stack import Stack

REQUIRED = ("--proxy-url", "--ca-file", "--group", "--namespace", "--token-file")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _flags(url: str, ca: Path, token: Path) -> dict[str, str]:
    return {"--proxy-url": url, "--ca-file": str(ca), "--group": "dc", "--namespace": "ops", "--token-file": str(token)}


def _empty(directory: Path) -> bool:
    return not any(directory.iterdir())


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("install.sh: error: "), lines[0]
    return lines[0]


@pytest.mark.parametrize("left_out", REQUIRED)
def test_a_missing_flag_is_one_error_line_and_creates_nothing(bundle: Path, root: Path, tmp_path: Path,
                                                              tls: ProxyTLS, left_out: str):
    token = tmp_path / "token"
    token.write_text("not-used\n")
    flags = _flags(f"https://127.0.0.1:{_closed_port()}", tls.ca_path, token)
    del flags[left_out]
    result = run_install(bundle, "--root", root, *[part for pair in flags.items() for part in pair])
    assert result.returncode == 2
    assert left_out in _one_error_line(result.stderr)
    assert _empty(root)


def test_an_unreachable_proxy_is_one_error_line_and_leaves_nothing_behind(bundle: Path, root: Path,
                                                                          tmp_path: Path, tls: ProxyTLS):
    token = tmp_path / "token"
    token.write_text("some-token\n")
    url = f"https://127.0.0.1:{_closed_port()}"
    flags = _flags(url, tls.ca_path, token)
    result = run_install(bundle, "--root", root, *[part for pair in flags.items() for part in pair])
    assert result.returncode == 1
    assert f"cannot reach the hrw proxy at {url}" in _one_error_line(result.stderr)
    assert _empty(root)


async def test_a_refused_token_is_one_error_line_and_leaves_nothing_behind(stack: Stack, bundle: Path,
                                                                           root: Path, tmp_path: Path):
    await stack.group("dc")
    token = tmp_path / "token"
    token.write_text("not-the-group-token\n")
    result = await asyncio.to_thread(
        run_install, bundle, "--root", root, "--proxy-url", stack.proxy.url, "--ca-file", stack.proxy.ca_path,
        "--group", "dc", "--namespace", stack.namespace, "--token-file", token, "--worker", "w1")
    assert result.returncode == 1
    line = _one_error_line(result.stderr)
    assert f"refused the registration token for worker group {stack.namespace}/dc" in line
    assert "not-the-group-token" not in result.stderr + result.stdout
    assert _empty(root)
    with pytest.raises(NotFound):
        await stack.admin.get(SECRETS.path(stack.namespace, names.worker_secret_name("dc", "w1")))


def test_a_damaged_artifact_is_refused_before_anything_happens(bundle: Path, root: Path, tmp_path: Path,
                                                               tls: ProxyTLS):
    token = tmp_path / "token"
    token.write_text("some-token\n")
    wheel = next((bundle / "wheels").glob("httpx-*.whl"))
    wheel.write_bytes(wheel.read_bytes()[:-100])  # a truncated copy
    flags = _flags(f"https://127.0.0.1:{_closed_port()}", tls.ca_path, token)
    result = run_install(bundle, "--root", root, *[part for pair in flags.items() for part in pair])
    assert result.returncode == 1
    assert "damaged" in _one_error_line(result.stderr)
    assert _empty(root)
