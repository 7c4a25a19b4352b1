"""The proxy's TLS serving certificate, reloaded when its files change, without dropping agents.

In a cluster the certificate is a Secret cert-manager renews, mounted as files; the kubelet
swaps a mounted Secret's files atomically (a new folder behind the `..data` symlink), so a
renewal shows as new inodes behind the same paths. Every `--tls-reload-seconds` the proxy
stats both files (following the symlinks) and, when either changed, builds a complete new
`SSLContext` from them in a thread. Only a context whose certificate and key loaded and match
replaces the one in use: a half-written renewal is logged and tried again at the next change,
while the old certificate goes on serving.

The listening socket keeps one front context whose `sni_callback` hands each new handshake the
newest context (OpenSSL calls it for every ClientHello, with or without SNI). Connections already
open keep the session they negotiated: agents connected before a renewal are not dropped, and
every handshake after it sees the new certificate.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path

from .audit import log

Stamp = tuple[tuple[int, int, int, int], ...]


def serving_context(cert_path: str, key_path: str) -> ssl.SSLContext:
    """A server context for the certificate (chain) and key files; raises when they do not load or match."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context


class ServingCertificate:
    """The context the TLS listener uses, and the files it came from."""

    def __init__(self, cert_path: str, key_path: str) -> None:
        self._paths = (cert_path, key_path)
        self._stamp = self._stamp_files()
        self._current = serving_context(cert_path, key_path)
        self.context = serving_context(cert_path, key_path)
        """The listener's context: its only job is to hand each handshake the newest one."""
        self.context.sni_callback = self._choose
        self.reloads = 0

    def _choose(self, connection: ssl.SSLObject, _server_name: str | None, _front: ssl.SSLContext) -> None:
        connection.context = self._current

    def _stamp_files(self) -> Stamp:
        stamps = []
        for path in self._paths:
            info = os.stat(Path(path))  # follows the symlinks of a mounted Secret
            stamps.append((info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size))
        return tuple(stamps)

    async def reload_if_changed(self) -> bool:
        """Load the files again if they changed since last time; True when a new certificate is in use."""
        try:
            stamp = await asyncio.to_thread(self._stamp_files)
        except OSError as exc:
            log.error("tls certificate files unreadable; still serving the previous one", error=str(exc))
            return False
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            context = await asyncio.to_thread(serving_context, *self._paths)
        except (OSError, ssl.SSLError) as exc:
            log.error("tls certificate not reloaded; still serving the previous one",
                      error=f"{type(exc).__name__}: {exc}")
            return False
        self._current = context
        self.reloads += 1
        log.info("tls certificate reloaded", cert=self._paths[0])
        return True

    async def watch(self, interval: float) -> None:
        """Check the files every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            await self.reload_if_changed()
