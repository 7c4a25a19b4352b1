"""The proxy's serving certificate (proxy/hrw_proxy/certificates.py): a changed pair of files is
loaded for new handshakes; a pair that does not load leaves the previous certificate serving."""

from __future__ import annotations

import shutil
from pathlib import Path

from hrw_dev import certs
from hrw_proxy.certificates import ServingCertificate


def issue(directory: Path, name: str) -> tuple[Path, Path]:
    ca = certs.create_ca(directory / f"ca-{name}", name="ca")
    return certs.issue_serving_cert(ca, directory / name, "tls")


async def test_a_renewed_pair_replaces_the_context_and_a_mismatched_one_does_not(tmp_path: Path) -> None:
    first_cert, first_key = issue(tmp_path, "one")
    second_cert, second_key = issue(tmp_path, "two")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copy(first_cert, cert)
    shutil.copy(first_key, key)
    serving = ServingCertificate(str(cert), str(key))
    before = serving._current
    assert not await serving.reload_if_changed()  # nothing changed

    shutil.copy(second_cert, cert)  # half a renewal: the new certificate beside the old key
    assert not await serving.reload_if_changed()
    assert serving._current is before

    shutil.copy(second_key, key)
    assert await serving.reload_if_changed()
    assert serving._current is not before and serving.reloads == 1


async def test_unreadable_files_leave_the_previous_certificate_serving(tmp_path: Path) -> None:
    cert, key = issue(tmp_path, "one")
    serving = ServingCertificate(str(cert), str(key))
    before = serving._current
    cert.unlink()
    assert not await serving.reload_if_changed()
    assert serving._current is before
