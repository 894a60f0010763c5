"""Getting a Keycloak distribution onto disk, verified, and ready to run.

The zip ``org.keycloak:keycloak-quarkus-dist:<version>:zip`` comes from a
user's ``--dist`` (path or URL) or Maven Central (through ``mvn`` when it is
installed, so ``~/.m2`` is reused, else plain HTTPS). It is cached per version
and unpacked once. Every write lands in a temp name first and is renamed only
once verified, so an interrupted download or unpack never poisons the cache.

Instances never run from the shared unpacked dist: :func:`prepare_server`
gives each one a small server dir of its own (kc.sh, conf, the Quarkus build
output, ``data/``) with symlinks to the 170 MB of jars. Keycloak derives its
H2 database, transaction logs and re-augmentation output from that dir, so two
instances never share a database nor rebuild each other's jars mid-run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from kcprov import KEYCLOAK_VERSION
from kcprov.dev import err_console, progress_status
from kcprov.errors import DevServerError

MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
ARTIFACT_PATH = "org/keycloak/keycloak-quarkus-dist"
# Parts of the dist an instance may change (re-augmentation writes lib/quarkus,
# start-dev reads conf/providers/themes from its home): copied per instance.
INSTANCE_COPIES = ("bin/kc.sh", "conf", "providers", "themes", "lib/quarkus-run.jar")
# Large and read-only: shared through symlinks.
SHARED_LINKS = ("lib/lib", "lib/app")


@dataclass(frozen=True)
class Dist:
    """An unpacked, verified Keycloak distribution in the cache."""

    version: str
    root: Path

    def build_dir(self, features: Sequence[str]) -> Path:
        """Where a finished Quarkus build for ``features`` is kept for new instances."""
        return self.root.parent / "builds" / (",".join(sorted(features)) or "default")


def cache_root() -> Path:
    """``$KCPROV_CACHE_DIR/keycloak``, else the user's cache dir."""
    base = os.environ.get("KCPROV_CACHE_DIR") or platformdirs.user_cache_dir("kcprov")
    return Path(base).expanduser() / "keycloak"


def zip_name(version: str) -> str:
    return f"keycloak-quarkus-dist-{version}.zip"


def maven_url(version: str) -> str:
    return f"{MAVEN_CENTRAL}/{ARTIFACT_PATH}/{version}/{zip_name(version)}"


def sha1_of(path: Path) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_zip(path: Path, sha1: str | None = None, *, full: bool = False) -> str:
    """Check ``path`` is a Keycloak dist zip and return its version.

    With ``sha1`` the checksum must match; ``full`` also CRC-checks every member
    (for zips that came without a checksum). Raises DevServerError otherwise.
    """
    if sha1 is not None and sha1_of(path) != sha1.lower():
        raise DevServerError(f"{path} does not match its SHA-1 checksum (corrupt or truncated).")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            top = {name.split("/", 1)[0] for name in names}
            root = top.pop() if len(top) == 1 else ""
            version = root.removeprefix("keycloak-") if root.startswith("keycloak-") else ""
            if not version or f"keycloak-{version}/bin/kc.sh" not in names:
                raise DevServerError(
                    f"{path} is a zip but not a Keycloak distribution "
                    "(no single keycloak-<version>/bin/kc.sh inside).",
                    hint="use keycloak-quarkus-dist-<version>.zip from Maven Central "
                    "or keycloak-<version>.zip from Keycloak's releases.",
                )
            if full and (bad := zf.testzip()) is not None:
                raise zipfile.BadZipFile(f"bad CRC in {bad}")
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DevServerError(f"{path} is not a valid zip file ({exc}).") from None
    return version


def ensure_dist(
    version: str | None = None, source: str | None = None, progress: bool = True
) -> Dist:
    """The unpacked dist for ``version`` (default: the pinned one, or ``source``'s).

    ``source`` is a user's zip (path or http(s) URL); without it the zip comes
    from Maven Central. A corrupt cached zip is discarded and fetched again.
    """
    zip_path = None
    if source:
        zip_path = _user_zip(source, progress)
        found = verify_zip(zip_path)
        if version and version != found:
            raise DevServerError(
                f"{source} holds Keycloak {found}, not the requested {version}.",
                hint=f"pass --version {found}, or drop --version to use the zip's version.",
            )
        version = found
    version = version or KEYCLOAK_VERSION
    dist = Dist(version, cache_root() / version / f"keycloak-{version}")
    if not (dist.root / "bin" / "kc.sh").is_file():
        _unpack(zip_path or cached_zip(version, progress), dist, progress)
    return dist


def cached_zip(version: str, progress: bool = True) -> Path:
    """The verified Maven Central zip for ``version`` in the cache, fetched if needed."""
    folder = cache_root() / version
    target = folder / zip_name(version)
    sha1_file = target.with_name(target.name + ".sha1")
    if target.exists():
        known = sha1_file.read_text().split()[0] if sha1_file.exists() else None
        try:
            with progress_status(f"Verifying {target.name}", progress):
                verify_zip(target, known, full=known is None)
            return target
        except DevServerError as exc:
            err_console.print(f"Discarding the cached zip: {exc.message}", markup=False)
            target.unlink()
            sha1_file.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".download-", suffix=".zip")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if not _mvn_copy(version, tmp, progress):
            _download(maven_url(version), tmp, progress)
        sha1 = _maven_sha1(version)
        try:
            verify_zip(tmp, sha1, full=sha1 is None)
        except DevServerError as exc:
            raise DevServerError(
                f"The Keycloak {version} zip fetched from Maven is corrupt: {exc.message}",
                hint=f"retry; if it persists, delete ~/.m2/repository/{ARTIFACT_PATH}/{version}.",
            ) from None
        if sha1:
            sha1_file.write_text(sha1 + "\n")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def prepare_server(dist: Dist, server_dir: Path, features: Sequence[str]) -> None:
    """Lay out an instance's own Keycloak home in ``server_dir`` on top of ``dist``.

    Kept as is when it already matches the dist's version; otherwise rebuilt,
    always keeping ``data/``. A cached Quarkus build for ``features`` (see
    :func:`save_build`) spares a fresh instance Keycloak's slow first build.
    """
    marker = server_dir / "version.txt"
    wanted = (dist.root / "version.txt").read_text()
    if marker.is_file() and marker.read_text() == wanted:
        return
    server_dir.mkdir(parents=True, exist_ok=True)
    for child in server_dir.iterdir():
        if child.name != "data":
            _remove(child)
    (server_dir / "bin").mkdir()
    (server_dir / "lib").mkdir()
    for rel in INSTANCE_COPIES:
        _copy(dist.root / rel, server_dir / rel)
    build = dist.build_dir(features)
    _copy(
        build if build.is_dir() else dist.root / "lib" / "quarkus", server_dir / "lib" / "quarkus"
    )
    for rel in SHARED_LINKS:
        (server_dir / rel).symlink_to(dist.root / rel, target_is_directory=True)
    marker.write_text(wanted)  # last: a half-made server dir is redone next time


def save_build(dist: Dist, server_dir: Path, features: Sequence[str]) -> None:
    """Keep a ready instance's Quarkus build so the next fresh instance reuses it.

    Safe to share: Keycloak checks the build options recorded in the build at
    every start and rebuilds when they differ.
    """
    target = dist.build_dir(features)
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".build-"))
    try:
        shutil.copytree(server_dir / "lib" / "quarkus", tmp / "quarkus")
        os.rename(tmp / "quarkus", target)
    except OSError:
        pass  # another instance saved the same build first; either copy will do
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _user_zip(source: str, progress: bool) -> Path:
    """A local path as is; a URL downloaded once into the cache (keyed by URL)."""
    if not source.startswith(("http://", "https://")):
        path = Path(source).expanduser()
        if not path.is_file():
            raise DevServerError(f"--dist {source}: no such file.")
        return path
    folder = cache_root() / "urls"
    target = folder / (hashlib.sha256(source.encode()).hexdigest()[:16] + ".zip")
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".download-", suffix=".zip")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _download(source, tmp, progress)
        sha1 = _fetch_text(source + ".sha1")
        verify_zip(tmp, sha1.split()[0] if sha1 else None, full=not sha1)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _unpack(zip_path: Path, dist: Dist, progress: bool) -> None:
    """Extract into a temp dir next to the target, then rename (atomic)."""
    folder = dist.root.parent
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".unpack-"))
    try:
        with progress_status(f"Unpacking Keycloak {dist.version}", progress):
            with zipfile.ZipFile(zip_path) as zf:
                for info in zf.infolist():
                    extracted = Path(zf.extract(info, tmp))
                    mode = info.external_attr >> 16
                    if mode and not stat.S_ISDIR(mode):
                        extracted.chmod(stat.S_IMODE(mode))
        try:
            os.rename(tmp / dist.root.name, dist.root)
        except OSError:
            if not (dist.root / "bin" / "kc.sh").is_file():  # else: a parallel unpack won
                raise
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DevServerError(
            f"Could not unpack {zip_path} into {folder}: {exc}",
            hint="check free disk space; a corrupt --dist zip must be downloaded again.",
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _mvn_copy(version: str, dest: Path, progress: bool) -> bool:
    """Fetch the zip with ``mvn dependency:copy`` (reuses ~/.m2); False if not possible."""
    mvn = shutil.which("mvn")
    if not mvn:
        return False
    artifact = f"org.keycloak:keycloak-quarkus-dist:{version}:zip"
    with (
        tempfile.TemporaryDirectory(dir=dest.parent, prefix=".mvn-") as out,
        progress_status(f"Fetching Keycloak {version} with mvn", progress),
    ):
        command = [
            mvn,
            "-B",
            "-q",
            "dependency:copy",
            f"-Dartifact={artifact}",
            f"-DoutputDirectory={out}",
        ]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                timeout=1800,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            why = str(exc)
        else:
            fetched = Path(out) / zip_name(version)
            if done.returncode == 0 and fetched.is_file():
                os.replace(fetched, dest)
                return True
            lines = (done.stdout + done.stderr).strip().splitlines()
            why = lines[-1] if lines else f"exit code {done.returncode}"
    err_console.print(
        f"mvn could not fetch Keycloak {version} ({why}); trying HTTPS.", markup=False
    )
    return False


def _maven_sha1(version: str) -> str | None:
    """The published SHA-1: the one mvn stored in ~/.m2, else Maven Central's."""
    local = (
        Path.home() / ".m2" / "repository" / ARTIFACT_PATH / version / (zip_name(version) + ".sha1")
    )
    text = local.read_text() if local.is_file() else _fetch_text(maven_url(version) + ".sha1")
    return text.split()[0] if text and text.strip() else None


def _fetch_text(url: str) -> str | None:
    import httpx  # here, not at the top: every kcprov command imports this module, few download

    try:
        response = httpx.get(url, follow_redirects=True, timeout=30)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


def _download(url: str, dest: Path, progress: bool) -> None:
    import httpx
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
    )
    try:
        with httpx.stream(
            "GET", url, follow_redirects=True, timeout=httpx.Timeout(30, read=120)
        ) as response:
            if response.status_code != 200:
                raise DevServerError(
                    f"Downloading {url} failed: HTTP {response.status_code}.",
                    hint="check the version and the URL, or pass --dist with a local zip.",
                )
            total = int(response.headers.get("content-length") or 0) or None
            with Progress(
                *columns, console=err_console, transient=True, disable=not progress
            ) as bar:
                task = bar.add_task(f"Downloading {url.rsplit('/', 1)[-1]}", total=total)
                with dest.open("wb") as fh:
                    for chunk in response.iter_bytes(1 << 20):
                        fh.write(chunk)
                        bar.advance(task, len(chunk))
    except httpx.HTTPError as exc:
        raise DevServerError(
            f"Could not download {url}: {exc}",
            hint="check the network, or pass --dist with a local Keycloak zip.",
        ) from None


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True)
    else:
        shutil.copy2(src, dst)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
