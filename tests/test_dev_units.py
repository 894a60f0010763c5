"""The dev runner's pure parts: Java lookup, dist verification, state file, compose."""

from __future__ import annotations

import hashlib
import stat
import zipfile
from pathlib import Path

import pytest
import yaml

import kcprov
from kcprov.dev import dist as dist_mod
from kcprov.dev.java import find_java, parse_java_major
from kcprov.dev.runner import REALM_CACHE_ENTRIES, default_management_port, normalize_features, start_dev_args
from kcprov.dev.state import DevState, load_state, save_state
from kcprov.errors import DevServerError

REPO = Path(__file__).resolve().parent.parent


def make_dist_zip(path: Path, version: str = "1.2.3", with_kc_sh: bool = True) -> Path:
    """A tiny zip shaped like a Keycloak distribution."""
    root = f"keycloak-{version}"
    with zipfile.ZipFile(path, "w") as zf:
        if with_kc_sh:
            info = zipfile.ZipInfo(f"{root}/bin/kc.sh")
            info.external_attr = (stat.S_IFREG | 0o755) << 16
            zf.writestr(info, "#!/bin/sh\n")
        zf.writestr(f"{root}/version.txt", f"Keycloak - Version {version}\n")
        for name in (
            "conf/keycloak.conf",
            "providers/README.md",
            "themes/README.md",
            "lib/quarkus-run.jar",
            "lib/quarkus/build-system.properties",
            "lib/lib/main/a.jar",
            "lib/app/keycloak.jar",
        ):
            zf.writestr(f"{root}/{name}", name)
    return path


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('openjdk version "25" 2025-09-16', 25),
        ('openjdk version "21-ea" 2023-09-19', 21),
        ('java version "1.8.0_292"', 8),
        ("no version here", None),
    ],
)
def test_parse_java_major(output: str, major: int | None) -> None:
    assert parse_java_major(output) == major


def fake_jdk(folder: Path, version: str) -> Path:
    java = folder / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2025-01-01' >&2\n")
    java.chmod(0o755)
    return folder


@pytest.fixture
def no_system_java(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH and JAVA_HOME without Java; returns the JDK folder the search looks in."""
    jdks = tmp_path / "jdks"
    jdks.mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("KCPROV_JDK_DIRS", str(jdks))
    return jdks


def test_find_java_picks_a_new_enough_jdk_from_the_jdk_folders(no_system_java: Path) -> None:
    fake_jdk(no_system_java / "a-old", "11.0.2")
    home = fake_jdk(no_system_java / "b-new", "21.0.1")
    java = find_java()
    assert (java.major, java.home) == (21, home.resolve())


def test_find_java_prefers_java_home(no_system_java: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_jdk(no_system_java / "jdk-25", "25")
    home = fake_jdk(no_system_java.parent / "chosen", "17.0.9")
    monkeypatch.setenv("JAVA_HOME", str(home))
    assert find_java().home == home.resolve()


def test_find_java_too_old_says_so(no_system_java: Path) -> None:
    fake_jdk(no_system_java / "jdk-11", "11.0.2")
    with pytest.raises(DevServerError) as err:
        find_java()
    assert "Java 11 at" in err.value.message
    assert "openjdk-17-jre-headless" in (err.value.hint or "")


def test_sha1_of_and_checksum_mismatch(tmp_path: Path) -> None:
    path = make_dist_zip(tmp_path / "kc.zip")
    expected = hashlib.sha1(path.read_bytes()).hexdigest()
    assert dist_mod.sha1_of(path) == expected
    assert dist_mod.verify_zip(path, expected.upper()) == "1.2.3"
    with pytest.raises(DevServerError, match="does not match its SHA-1"):
        dist_mod.verify_zip(path, "0" * 40)


def test_verify_zip_rejects_non_zips_truncated_zips_and_other_zips(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(DevServerError, match="not a valid zip"):
        dist_mod.verify_zip(text)
    whole = make_dist_zip(tmp_path / "whole.zip").read_bytes()
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DevServerError, match="not a valid zip"):
        dist_mod.verify_zip(truncated)
    with pytest.raises(DevServerError, match="not a Keycloak distribution"):
        dist_mod.verify_zip(make_dist_zip(tmp_path / "other.zip", with_kc_sh=False))


def test_ensure_dist_from_a_local_zip_unpacks_once_with_exec_bits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KCPROV_CACHE_DIR", str(tmp_path / "cache"))
    source = make_dist_zip(tmp_path / "keycloak-1.2.3.zip")
    kc = dist_mod.ensure_dist(source=str(source), progress=False)
    assert kc.version == "1.2.3"
    assert kc.root == tmp_path / "cache" / "keycloak" / "1.2.3" / "keycloak-1.2.3"
    assert (kc.root / "bin" / "kc.sh").stat().st_mode & 0o111
    assert not [p for p in kc.root.parent.iterdir() if p.name.startswith(".")]  # no temp left
    with pytest.raises(DevServerError, match="holds Keycloak 1.2.3, not the requested 9.9.9"):
        dist_mod.ensure_dist(version="9.9.9", source=str(source), progress=False)


def test_prepare_server_shares_jars_and_keeps_data_across_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KCPROV_CACHE_DIR", str(tmp_path / "cache"))
    old = dist_mod.ensure_dist(
        source=str(make_dist_zip(tmp_path / "a.zip", "1.0.0")), progress=False
    )
    new = dist_mod.ensure_dist(
        source=str(make_dist_zip(tmp_path / "b.zip", "2.0.0")), progress=False
    )
    server = tmp_path / "home" / "server"
    dist_mod.prepare_server(old, server, ())
    assert (server / "lib" / "lib").resolve() == (old.root / "lib" / "lib").resolve()
    assert not (server / "lib" / "quarkus").is_symlink()
    (server / "data").mkdir()
    (server / "data" / "db").write_text("keep me")
    dist_mod.prepare_server(new, server, ())
    assert (server / "version.txt").read_text() == "Keycloak - Version 2.0.0\n"
    assert (server / "lib" / "app").resolve() == (new.root / "lib" / "app").resolve()
    assert (server / "data" / "db").read_text() == "keep me"


def test_a_saved_build_seeds_new_instances_with_the_same_features(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KCPROV_CACHE_DIR", str(tmp_path / "cache"))
    kc = dist_mod.ensure_dist(source=str(make_dist_zip(tmp_path / "a.zip")), progress=False)
    first = tmp_path / "one" / "server"
    dist_mod.prepare_server(kc, first, ("cimd",))
    (first / "lib" / "quarkus" / "build-system.properties").write_text("built with cimd")
    dist_mod.save_build(kc, first, ("cimd",))
    second = tmp_path / "two" / "server"
    dist_mod.prepare_server(kc, second, ("cimd",))
    assert (second / "lib" / "quarkus" / "build-system.properties").read_text() == "built with cimd"
    third = tmp_path / "three" / "server"
    dist_mod.prepare_server(kc, third, ())
    assert (third / "lib" / "quarkus" / "build-system.properties").read_text() != "built with cimd"


def sample_state(home: Path) -> DevState:
    return DevState(
        url="http://localhost:8080",
        management_url="http://localhost:9000",
        user="admin",
        password="s3cret-value",
        version="26.7.3",
        port=8080,
        management_port=9000,
        features=("cimd",),
        home=home,
        log_path=home / "keycloak.log",
        server_dir=home / "server",
        started_at="2026-01-01T00:00:00+00:00",
        pid=1234,
    )


def test_state_file_is_private_and_round_trips(tmp_path: Path) -> None:
    state = sample_state(tmp_path)
    save_state(state)
    path = tmp_path / "state.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_state(tmp_path) == state
    assert "s3cret-value" not in repr(state)
    assert load_state(tmp_path / "nowhere") is None


def test_state_dir_follows_kcprov_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCPROV_HOME", str(tmp_path))
    save_state(sample_state(tmp_path))
    assert load_state() == sample_state(tmp_path)


def test_damaged_state_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(DevServerError, match="damaged"):
        load_state(tmp_path)


def test_ports_features_and_arguments() -> None:
    assert default_management_port(8080) == 9000
    assert default_management_port(18080) == 19000
    with pytest.raises(DevServerError, match="--management-port"):
        default_management_port(65000)
    assert normalize_features(["resource-indicators,cimd", " cimd "]) == (
        "cimd",
        "resource-indicators",
    )
    with pytest.raises(DevServerError, match="not a Keycloak feature"):
        normalize_features(["cimd;rm -rf /"])
    assert start_dev_args(8080, 9000, ("cimd",)) == [
        "start-dev",
        "--http-port=8080",
        "--http-management-port=9000",
        "--health-enabled=true",
        f"--cache-embedded-realms-max-count={REALM_CACHE_ENTRIES}",
        "--features=cimd",
    ]


def test_compose_runs_the_pinned_image_with_the_same_options() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    service = compose["services"]["keycloak"]
    assert service["image"] == f"quay.io/keycloak/keycloak:{kcprov.KEYCLOAK_VERSION}"
    command = service["command"]
    assert command[0] == "start-dev" and "--health-enabled=true" in command
    assert f"--cache-embedded-realms-max-count={REALM_CACHE_ENTRIES}" in command
    assert "--features=${KC_FEATURES:-cimd,resource-indicators}" in command
    password = service["environment"]["KC_BOOTSTRAP_ADMIN_PASSWORD"]
    assert password.startswith("${KC_BOOTSTRAP_ADMIN_PASSWORD:?")
    assert set(service["ports"]) == {"8080:8080", "9000:9000"}
