"""Syntax checks of scripts, so that a configuration whose script cannot even be parsed is reported
before any agent runs it (issue 16).

Nothing is executed: Python is compiled (`compile`, which runs no code), bash and sh scripts are
read by the shell with `-n` (parse only) where this host has that shell. PowerShell, or a shell
the host lacks, is not checked here: the agent reports what fails at run time. Verdicts are kept
by (interpreter, sha256 of the text), so a reconcile that sees the same script costs nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil

from hrw_api import Interpreter

_SHELLS = {Interpreter.BASH: "bash", Interpreter.SH: "sh"}
_LIMIT = 300


class SyntaxChecker:
    def __init__(self, *, timeout: float = 10.0) -> None:
        self._timeout = timeout
        self._verdicts: dict[tuple[Interpreter, str], str | None] = {}

    async def problem(self, interpreter: Interpreter, text: str) -> str | None:
        """Why `text` does not parse as `interpreter`'s script, or None (also when it cannot tell)."""
        key = (interpreter, hashlib.sha256(text.encode("utf-8")).hexdigest())
        if key not in self._verdicts:
            self._verdicts[key] = await self._check(interpreter, text)
        return self._verdicts[key]

    async def _check(self, interpreter: Interpreter, text: str) -> str | None:
        if interpreter is Interpreter.PYTHON3:
            try:
                compile(text, "<script>", "exec", dont_inherit=True)
            except (SyntaxError, ValueError) as exc:
                line = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) and exc.lineno else ""
                return f"python3 syntax error{line}: {getattr(exc, 'msg', None) or exc}"[:_LIMIT]
            return None
        shell = _SHELLS.get(interpreter)
        path = shutil.which(shell) if shell else None
        if path is None:
            return None
        process = await asyncio.create_subprocess_exec(
            path, "-n", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        try:
            _, stderr = await asyncio.wait_for(process.communicate(text.encode("utf-8")), self._timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            return None
        if process.returncode == 0:
            return None
        detail = stderr.decode("utf-8", errors="replace").strip().replace("bash: ", "").replace("sh: ", "")
        return f"{interpreter.value} syntax error: {detail or 'the shell refused it'}"[:_LIMIT]
