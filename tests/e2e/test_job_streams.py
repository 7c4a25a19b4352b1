"""A person follows a job that uses a secret (issue 14, "job streams a person can follow"):
`hrw logs -f` shows a line while the runbook still waits after printing it, every spelling of the
secret the runbook prints is masked, and what the script wrote on stderr comes out on stderr.
Real `hrw` subprocess, real control plane, operator, proxy and agent.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from pathlib import Path
from urllib.parse import quote, quote_plus

from hrw_api import names
from hrw_api.kubeclient import CONFIG_MAPS
from tests.support.processes import project_executable
from tests.support.stack import Stack

GROUP = "dc"
USERNAME = "svc-backup"
PASSWORD = 'Zq7 s3cr/t+"é-e2e'

# python3: each print is one write(); the runbook waits for the test's file after the prompt.
SCRIPT = """\
import base64, json, os, pathlib, sys, time, urllib.parse

user, password = os.environ["HRW_ASSET_API_USERNAME"], os.environ["HRW_ASSET_API_PASSWORD"]
raw = password.encode()
forms = [password, json.dumps(password)[1:-1], base64.b64encode(raw).decode(),
         base64.b64encode(f"{user}:{password}".encode()).decode(),
         urllib.parse.quote(password, safe=""), urllib.parse.quote_plus(password), raw.hex(), raw.hex().upper()]
print("as " + user + ": " + " ".join(forms), flush=True)
print("warning on stderr: " + password, file=sys.stderr, flush=True)
print("ready? ", end="", flush=True)
go = pathlib.Path(os.environ["HRW_PARAM_GO"])
while not go.exists():
    time.sleep(0.05)
print("going")
print("cut: " + password[:5], end="", flush=True)
time.sleep(1)  # longer than the agent's quiet period: the first part may show, the rest must not
print(password[5:], flush=True)
"""

FORMS = [PASSWORD, json.dumps(PASSWORD)[1:-1], base64.b64encode(PASSWORD.encode()).decode(),
         base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode(), quote(PASSWORD, safe=""),
         quote_plus(PASSWORD), PASSWORD.encode().hex(), PASSWORD.encode().hex().upper()]


async def _read_until(stream: asyncio.StreamReader, wanted: str, *, timeout: float) -> str:  # noqa: ASYNC109
    """What `stream` delivered up to and including `wanted`: the prompt has no newline to read up to."""
    seen = b""
    async with asyncio.timeout(timeout):
        while wanted.encode() not in seen:
            piece = await stream.read(4096)
            assert piece, f"stream ended before {wanted!r}; got {seen.decode()!r}"
            seen += piece
    return seen.decode()


def _settled(text: str) -> str:
    # A form is masked as soon as it is whole, so base64 padding may follow the mask (see masking).
    return re.sub(r"\*\*\*=+", "***", text)


async def test_logs_follow_shows_a_masked_line_while_the_runbook_waits_and_stderr_apart(stack: Stack,
                                                                                         scratch: Path):
    assert len(set(FORMS)) == len(FORMS)  # each spelling is its own case
    go = scratch / "go"
    await stack.group(GROUP)
    await stack.secret("api", {"password": PASSWORD})
    await stack.asset("api", {"type": "Credential", "username": USERNAME, "passwordFrom": {
        "secretKeyRef": {"name": "api", "key": "password"}}})
    await stack.runbook("talkative", SCRIPT, interpreter="python3", assets=["api"],
                        parameters=[{"name": "go", "type": "string"}])
    stack.start_agent(GROUP, "w1")
    await stack.job("j1", "talkative", GROUP, parameters={"go": str(go)})
    await stack.wait_phase("j1", "Running")

    argv = [project_executable("hrw"), "logs", "-f", "j1", "-n", stack.namespace,
            "--kubeconfig", str(stack.cluster.kubeconfig_path)]
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        shown = await _read_until(proc.stdout, "ready? ", timeout=20)
        warned = await _read_until(proc.stderr, "\n", timeout=20)
        # Seen while the runbook still waits for `go` (the test has not made it yet): nothing was
        # held back behind the quiet step.
        assert (await stack.get_job("j1"))["status"]["phase"] == "Running"
        assert _settled(shown) == f"as {USERNAME}: " + " ".join(["***"] * len(FORMS)) + "\nready? "
        assert warned == "warning on stderr: ***\n"
        go.touch()
        rest, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err
    rest_text = rest.decode()
    assert rest_text.startswith("going\ncut: ")
    assert rest_text in ("going\ncut: ***\n", f"going\ncut: {PASSWORD[:5]}***\n")  # never the whole secret
    assert "j1: Succeeded" in err.decode()
    for text in (shown + rest_text, warned + err.decode()):
        for form in FORMS:
            assert form not in text

    # The stored chunks say which stream each came from; `hrw logs` kept them apart above.
    listing = await stack.admin.list(CONFIG_MAPS.path(stack.namespace), labelSelector=f"{names.LABEL_JOB}=j1")
    streams = {(item.get("data") or {}).get(names.OUTPUT_STREAM_KEY) for item in listing["items"]}
    assert streams == {"stdout", "stderr"}
    stderr_text = "".join(item["data"][names.OUTPUT_CHUNK_KEY] for item in listing["items"]
                          if item["data"].get(names.OUTPUT_STREAM_KEY) == "stderr")
    assert stderr_text == "warning on stderr: ***\n"
