"""Build the agent's offline artifact: `make dist` runs this.

A server that joins a worker group often has no route to a package index, so the agent ships
as one tarball that holds everything its install needs:

    hrw-agent-<version>-linux-x86_64/
        install.sh             the installer (run as root; see its --help)
        preflight.py           run by install.sh with the new venv's Python: proxy reachable, token accepted
        hrw-agent.service      the systemd unit
        agent.example.yaml     every configuration key, commented
        MANIFEST               version, the project's wheel, the Pythons and platform the wheels are for
        wheels/                the project's wheel, every runtime dependency for each supported
                               CPython, and pip's own wheel (the installer runs pip from it)
        SHA256SUMS             of every file above; install.sh checks it first

and beside the tarball `<tarball>.sha256`, for `sha256sum -c`. Building needs the package
index (the wheels are downloaded here, once); installing never does (`pip --no-index`).

The wheels are for Linux x86_64 with glibc 2.17 or newer (manylinux2014) and CPython 3.11,
3.12 and 3.13. The dependency versions are resolved once, for the first Python, and pinned
for the others, so every server runs the same versions whatever its Python.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PYTHONS = ("3.11", "3.12", "3.13")
PLATFORM = "linux-x86_64"
# manylinux2014 is glibc 2.17: the oldest tag the dependencies still publish, so the wheels
# install on any x86_64 distribution of the last decade.
PIP_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64")
_WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-")


def run(*argv: str | Path, cwd: Path | None = None) -> None:
    """A build step; its output goes to our stderr so `make dist` shows progress and failures."""
    subprocess.run([str(a) for a in argv], cwd=cwd, check=True, stdout=sys.stderr)


def pip(*argv: str | Path) -> None:
    run(sys.executable, "-m", "pip", "--disable-pip-version-check", *argv)


def build_project_wheel(wheels: Path) -> Path:
    before = set(wheels.glob("*.whl"))
    pip("wheel", "--quiet", "--no-deps", "--wheel-dir", wheels, ROOT)
    built = sorted(set(wheels.glob("*.whl")) - before)
    if len(built) != 1:
        raise SystemExit(f"expected one project wheel, pip built {[p.name for p in built]}")
    return built[0]


def download_dependencies(project_wheel: Path, wheels: Path, work: Path) -> None:
    """The runtime dependencies as binary wheels, for each supported Python, pinned to one set."""
    constraints = work / "constraints.txt"
    for index, python in enumerate(PYTHONS):
        platform_args: list[str] = []
        for platform in PIP_PLATFORMS:
            platform_args += ["--platform", platform]
        pinned = ["--constraint", str(constraints)] if index else []
        pip("download", "--quiet", "--only-binary=:all:", "--implementation", "cp", "--python-version", python,
            *platform_args, *pinned, "--find-links", wheels, "--dest", wheels, project_wheel)
        if index == 0:
            constraints.write_text("".join(f"{name}=={version}\n" for name, version in _pins(wheels, project_wheel)))


def _pins(wheels: Path, project_wheel: Path) -> list[tuple[str, str]]:
    pins = []
    for wheel in sorted(wheels.glob("*.whl")):
        match = _WHEEL_NAME.match(wheel.name)
        if match and wheel != project_wheel:
            pins.append((match["name"], match["version"]))
    return pins


def download_pip(wheels: Path) -> Path:
    """pip's own wheel: install.sh runs pip straight from it, so the target needs no ensurepip."""
    pip("download", "--quiet", "--only-binary=:all:", "--no-deps", "--dest", wheels, "pip")
    found = sorted(wheels.glob("pip-*.whl"))
    if len(found) != 1:
        raise SystemExit(f"expected one pip wheel, found {[p.name for p in found]}")
    return found[0]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(bundle: Path, version: str, project_wheel: Path, pip_wheel: Path) -> None:
    wheel_set = hashlib.sha256()
    for wheel in sorted((bundle / "wheels").glob("*.whl")):
        wheel_set.update(f"{wheel.name} {sha256(wheel)}\n".encode())
    # The release id names the venv dir on the server: the same artifact installs into the same
    # dir (a re-run is a no-op), a rebuilt one of the same version into a new one.
    lines = {
        "VERSION": version,
        "RELEASE": f"{version}-{wheel_set.hexdigest()[:12]}",
        "WHEEL": project_wheel.name,
        "PIP_WHEEL": pip_wheel.name,
        "PYTHONS": " ".join(PYTHONS),
        "PLATFORM": PLATFORM,
    }
    (bundle / "MANIFEST").write_text("".join(f"{key}={value}\n" for key, value in lines.items()))


def write_sums(bundle: Path) -> None:
    files = sorted(p for p in bundle.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    (bundle / "SHA256SUMS").write_text("".join(f"{sha256(p)}  {p.relative_to(bundle)}\n" for p in files))


def write_tarball(bundle: Path, tarball: Path, mtime: int) -> None:
    """A tarball whose bytes depend only on its contents (sorted, root-owned, one timestamp)."""
    def normalized(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = mtime
        info.mode = 0o755 if info.isdir() or info.name.endswith(".sh") else 0o644
        return info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in [bundle, *sorted(bundle.rglob("*"))]:
            tar.add(path, arcname=str(Path(bundle.name) / path.relative_to(bundle)), recursive=False,
                    filter=normalized)
    with tarball.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=mtime) as gz:
        gz.write(buffer.getvalue())


def source_date_epoch() -> int:
    """The last commit's time, so two builds of one commit agree; now outside a git checkout."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"], capture_output=True,
                             text=True, check=True).stdout.strip()
        return int(out)
    except (OSError, subprocess.CalledProcessError, ValueError):
        return int(time.time())


def build(out: Path) -> Path:
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    epoch = source_date_epoch()
    os.environ["SOURCE_DATE_EPOCH"] = str(epoch)  # setuptools/wheel stamp the project wheel with it
    with tempfile.TemporaryDirectory(prefix="hrw-agent-dist-") as tmp:
        work = Path(tmp)
        staging = work / "staging"
        wheels = staging / "wheels"
        wheels.mkdir(parents=True)
        project_wheel = build_project_wheel(wheels)
        version = _WHEEL_NAME.match(project_wheel.name)["version"]  # type: ignore[index]
        download_dependencies(project_wheel, wheels, work)
        pip_wheel = download_pip(wheels)
        name = f"hrw-agent-{version}-{PLATFORM}"
        bundle = work / name
        staging.rename(bundle)
        for source, target, mode in ((HERE / "install.sh", "install.sh", 0o755),
                                     (HERE / "preflight.py", "preflight.py", 0o644),
                                     (ROOT / "deploy" / "systemd" / "hrw-agent.service", "hrw-agent.service", 0o644),
                                     (ROOT / "deploy" / "agent.example.yaml", "agent.example.yaml", 0o644)):
            shutil.copyfile(source, bundle / target)
            os.chmod(bundle / target, mode)
        write_manifest(bundle, version, project_wheel, pip_wheel)
        write_sums(bundle)
        tarball = out / f"{name}.tar.gz"
        partial = tarball.with_name(tarball.name + ".partial")
        write_tarball(bundle, partial, epoch)
        partial.replace(tarball)
    checksum = tarball.with_name(tarball.name + ".sha256")
    checksum.write_text(f"{sha256(tarball)}  {tarball.name}\n")
    print(f"built {tarball} ({tarball.stat().st_size / 1e6:.1f} MB) and {checksum.name} "
          f"in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return tarball


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the hrw agent's offline install artifact.")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    args = parser.parse_args()
    print(build(args.out))


if __name__ == "__main__":
    main()
