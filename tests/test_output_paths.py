"""Where kcprov writes: the path policy of kcprov.fileio, on real files, FIFOs, sockets, symlinks and devices.

Each test runs in a fresh working tree (`work`) with a sibling directory
(`outside`) that a realm file must not reach; the whole tmp tree is listed
before and after to show that a refused write changed nothing anywhere.
The last test applies a realm file through the CLI against the real Keycloak.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from kcprov.envgen import HEADER, check_env_targets, write_env_files
from kcprov.errors import KcprovError
from kcprov.fileio import OutputFileError, resolve_output, write_output, write_private
from kcprov.spec import load_realm
from kcprov.spec.models import RealmSpec
from kcprov.spec.problems import SpecError
from kcprov.workflow import PLAN_FORMAT, load_saved_plan, save_plans

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working tree (the cwd), with the things a target must not be, and a sibling `outside`."""
    tree = tmp_path / "work"
    tree.mkdir()
    (tmp_path / "outside").mkdir()
    monkeypatch.chdir(tree)
    (tree / "dir").mkdir()
    os.mkfifo(tree / "fifo")
    (tree / "file.txt").write_text("old\n")
    os.symlink("fifo", tree / "to-fifo")
    os.symlink("dir", tree / "to-dir")
    os.symlink("/dev/null", tree / "to-null")
    os.symlink("loop-b", tree / "loop-a")
    os.symlink("loop-a", tree / "loop-b")
    os.symlink("file.txt", tree / "to-file")
    os.symlink(tmp_path / "outside", tree / "to-outside")
    return tree


def listing(root: Path) -> dict[str, tuple[str, bytes | str | None]]:
    """Every path under `root` with its type and content (file bytes, symlink target)."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            found[str(path)] = ("link", os.readlink(path))
        elif stat.S_ISREG(info.st_mode):
            found[str(path)] = ("file", path.read_bytes())
        else:
            found[str(path)] = (stat.filemode(info.st_mode)[0], None)
    return found


BAD_FOR_EVERYONE = [
    ("dir", "is a directory"),
    ("dir/", "names a directory"),
    (".", "names a directory"),
    ("dir/..", "names a directory"),
    ("fifo", "is a FIFO"),
    ("to-fifo", "to-fifo (a symlink to "),
    ("to-dir", "is a directory"),
    ("loop-a", "symlink loop"),
    ("file.txt/x", "not a directory"),
    ("", "is empty"),
    ("x\n.env", "control character"),
    ("x\x1b[2J.env", "control character"),
    ("x\0.env", "control character"),
]


@pytest.mark.parametrize("origin", ["command-line", "realm-file"])
@pytest.mark.parametrize(("name", "expected"), BAD_FOR_EVERYONE)
def test_a_target_that_is_not_a_regular_file_is_refused(work, origin, name, expected):
    before = listing(work.parent)
    with pytest.raises(OutputFileError) as refused:
        write_output(name, "secret-free\n", origin=origin, what="plan file")
    assert expected in refused.value.message
    assert refused.value.hint
    assert "\x1b" not in str(refused.value) and "\0" not in str(refused.value)
    assert listing(work.parent) == before


def test_a_socket_is_refused(work):
    with socket.socket(socket.AF_UNIX) as server:
        server.bind("sock")
        with pytest.raises(OutputFileError, match="sock: the plan file is a socket"):
            write_output("sock", "{}", origin="command-line", what="plan file")
        assert stat.S_ISSOCK(os.lstat("sock").st_mode)


@pytest.mark.parametrize(("device", "expected"), [
    ("/dev/full", "is a character device"),
    ("/dev/null", "is a character device"),
    ("to-null", "to-null (a symlink to /dev/null): the plan file is a character device"),
])
def test_devices_are_refused_with_the_way_to_discard_or_print(work, device, expected):
    before = listing(work.parent)
    with pytest.raises(OutputFileError) as refused:
        write_output(device, "{}", origin="command-line", what="plan file")
    assert expected in refused.value.message
    assert "`-o -`" in refused.value.hint and "leave out -o" in refused.value.hint
    assert listing(work.parent) == before
    assert os.path.islink("to-null")


def test_dev_stdout_is_never_replaced(work):
    """Whatever stdout is (a pipe here, a file when redirected), -o /dev/stdout is refused: use -o -."""
    code = ("from kcprov.fileio import write_output\n"
            "write_output('/dev/stdout', '{}', origin='command-line', what='plan file')")
    with open("redirected.txt", "w") as redirected:
        done = subprocess.run([sys.executable, "-c", code], stdout=redirected, stderr=subprocess.PIPE, text=True,
                              timeout=60, cwd=work)
    assert done.returncode == 1
    assert "OutputFileError: /dev/stdout: the plan file would be on" in done.stderr
    assert "use `-o -`" in done.stderr
    assert os.path.islink("/dev/stdout")
    assert Path("redirected.txt").read_text() == ""


def test_a_fifo_never_blocks(work):
    """No reader on the FIFO: an open for writing would wait forever, so the check must not open it."""
    code = ("from kcprov.fileio import write_output, write_private, OutputFileError\n"
            "for call in (lambda: write_output('fifo', 'x', origin='command-line'), lambda: write_private('fifo', 'x')):\n"
            "    try:\n        call()\n    except OutputFileError as exc:\n        print(exc.message)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=work)
    assert done.stdout.splitlines() == [
        "fifo: the file is a FIFO (named pipe), not a regular file.",
        "fifo: the file is a FIFO (named pipe), not a regular file.",
    ], done.stderr


def test_a_missing_directory_on_the_command_line_is_an_error_not_created(work):
    with pytest.raises(OutputFileError, match="directory /missing/dir does not exist"):
        write_output("/missing/dir/plan.json", "{}", origin="command-line", what="plan file")
    assert not os.path.lexists("/missing")
    with pytest.raises(OutputFileError, match="directory .*/work/new does not exist"):
        write_output("new/plan.json", "{}", origin="command-line", what="plan file")
    assert not os.path.lexists("new")


def test_the_command_line_may_write_outside_the_tree(work):
    outside = work.parent / "outside" / "plan.json"
    assert write_output(outside, "{}\n", origin="command-line") is True
    assert outside.read_text() == "{}\n"
    assert stat.S_IMODE(outside.stat().st_mode) == 0o600


@pytest.mark.parametrize("name", ["../outside/x.env", "../../../../../../elsewhere/x.env", "/etc/cron.d/kcprov",
                                  "to-outside/x.env", "dir/../../outside/x.env", "to-null"])
def test_a_realm_file_cannot_write_outside_the_tree(work, name):
    before = listing(work.parent)
    with pytest.raises(OutputFileError) as refused:
        write_output(name, "KEY=1\n", origin="realm-file", what="env_file of MCP server 'calc'")
    assert "outside the working directory" in refused.value.message
    where = "is" if name == "/etc/cron.d/kcprov" else "resolves to"
    assert refused.value.message.startswith(f"{name}: the env_file of MCP server 'calc' {where} ")
    assert "--allow-outside DIR" in refused.value.hint
    assert listing(work.parent) == before
    assert not os.path.lexists("/elsewhere") and not os.path.lexists("/etc/cron.d/kcprov")


def test_allow_outside_opens_one_directory_and_creates_nothing_there(work):
    allowed = work.parent / "outside"
    assert write_output("to-outside/x.env", "KEY=1\n", origin="realm-file", allow_outside=[allowed]) is True
    assert (allowed / "x.env").read_text() == "KEY=1\n"
    assert write_output(allowed / "y.env", "KEY=2\n", origin="realm-file", allow_outside=[str(allowed)]) is True
    with pytest.raises(OutputFileError, match="does not exist"):
        write_output("to-outside/sub/x.env", "KEY=1\n", origin="realm-file", allow_outside=[allowed])
    assert not (allowed / "sub").exists()
    with pytest.raises(OutputFileError, match="outside the working directory"):
        write_output("/etc/cron.d/kcprov", "x", origin="realm-file", allow_outside=[allowed])


def test_inside_the_tree_an_env_files_directories_are_created_and_absolute_paths_work(work):
    assert write_output("srv/nested/.env", "KEY=1\n", origin="realm-file") is True
    assert (work / "srv/nested/.env").read_text() == "KEY=1\n"
    assert write_output(work / "abs.env", "KEY=1\n", origin="realm-file") is True
    assert write_output("dir/../inside.env", "KEY=1\n", origin="realm-file") is True
    assert sorted(p.name for p in work.glob("*.env")) == ["abs.env", "inside.env"]


def test_a_symlink_to_a_regular_file_stays_a_symlink(work):
    assert write_output("to-file", "new\n", origin="realm-file") is True
    assert os.readlink("to-file") == "file.txt"
    assert (work / "file.txt").read_text() == "new\n"
    assert stat.S_IMODE((work / "file.txt").stat().st_mode) == 0o600
    assert resolve_output("to-file", origin="command-line") == work / "file.txt"
    assert write_output("to-file", "new\n", origin="command-line") is False


def test_an_unchanged_file_is_left_alone_but_made_private(work):
    (work / "file.txt").chmod(0o644)
    mtime = (work / "file.txt").stat().st_mtime_ns
    assert write_output("file.txt", "old\n", origin="realm-file") is False
    assert stat.S_IMODE((work / "file.txt").stat().st_mode) == 0o600
    assert (work / "file.txt").stat().st_mtime_ns == mtime


def test_a_failed_write_leaves_the_target_and_no_temp_file(work):
    """The process's file size limit (ulimit -f) makes the write fail half way: a real EFBIG."""
    code = textwrap.dedent("""
        import resource, signal
        from kcprov.fileio import write_private, OutputFileError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            write_private("file.txt", b"x" * 1_000_000)
        except OutputFileError as exc:
            print(exc)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=work)
    assert done.stdout.startswith(f"cannot write file.txt: file too large; the file is unchanged."), done.stderr
    assert "ulimit -f" in done.stdout
    assert (work / "file.txt").read_text() == "old\n"
    assert not list(work.glob(".file.txt.*"))


FULL_AND_READ_ONLY = """
import json, os, subprocess, sys
from kcprov.fileio import write_private, OutputFileError
disk = sys.argv[1]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "kcprov-test", disk], check=True)
target = os.path.join(disk, "x.env")
write_private(target, "old\\n")
seen = {}
for case in ("full", "read-only"):
    if case == "read-only":
        subprocess.run(["mount", "-o", "remount,ro", disk], check=True)
    try:
        write_private(target, "new" * 100_000)
    except OutputFileError as exc:
        seen[case] = {"error": str(exc), "target": open(target).read(), "files": sorted(os.listdir(disk))}
print(json.dumps(seen))
"""


def test_a_full_or_read_only_filesystem_is_one_clear_error(tmp_path):
    """A real 64 KiB tmpfs in a private mount namespace (unshare -rm): ENOSPC, then EROFS after remount ro."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        done = subprocess.run(["unshare", "-rm", sys.executable, "-c", FULL_AND_READ_ONLY, str(disk)],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
    except FileNotFoundError:
        pytest.skip("no unshare(1) here")
    if done.returncode and ("mount" in done.stderr or "unshare" in done.stderr):
        pytest.skip(f"cannot mount a private tmpfs here: {done.stderr.strip().splitlines()[-1]}")
    seen = json.loads(done.stdout)
    assert seen["full"]["error"].startswith(f"cannot write {disk}/x.env: no space left on device; the file is unchanged.")
    assert "hint: free space on that filesystem" in seen["full"]["error"]
    assert seen["read-only"]["error"].startswith(f"cannot write {disk}/x.env: read-only file system;")
    for case in seen.values():
        assert case["target"] == "old\n"
        assert case["files"] == ["x.env"]


WRITER = """
import sys
from kcprov.fileio import write_private
target, sizes = sys.argv[1], [int(n) for n in sys.argv[2:]]
print("ready", flush=True)
i = 0
while True:
    write_private(target, bytes([65 + i % 2]) * sizes[i % 2])
    i += 1
"""


def test_sigkill_during_write_private_leaves_the_old_or_the_new_file(work):
    """Killed at random points while rewriting a large file, the target is always one whole version, mode 0600."""
    sizes = (3_000_000, 5_000_000)
    versions = {b"A" * sizes[0], b"B" * sizes[1]}
    target = work / "big.env"
    write_private(target, b"A" * sizes[0])
    rng = random.Random(10)
    for _ in range(20):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target), *map(str, sizes)],
                                  stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert writer.stdout.readline() == "ready\n"
        try:
            writer.wait(timeout=rng.uniform(0.0, 0.3))
        except subprocess.TimeoutExpired:
            pass
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        assert writer.returncode == -signal.SIGKILL
        assert target.read_bytes() in versions
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        for stray in work.glob(".big.env.*.tmp"):  # a killed write may leave its own temp file, 0600
            assert stat.S_IMODE(stray.stat().st_mode) == 0o600
            stray.unlink()


# ---------------------------------------------------------------- saved plans


def test_a_plan_goes_to_stdout_with_dash(work, capsys):
    save_plans("-", "http://kc", [], prune=False)
    assert json.loads(capsys.readouterr().out) == {"format": PLAN_FORMAT, "keycloak_url": "http://kc",
                                                   "prune": False, "adopt": False, "plans": []}
    stream = io.StringIO()
    save_plans(stream, "http://kc", [], prune=True)
    assert json.loads(stream.getvalue())["prune"] is True
    save_plans(Path("-"), "http://kc", [], prune=False)
    assert json.loads(capsys.readouterr().out)["plans"] == []
    assert not os.path.lexists("-")
    save_plans("./-", "http://kc", [], prune=False)
    assert json.loads(Path("-").read_text())["format"] == PLAN_FORMAT


@pytest.mark.parametrize("target", ["dir", "fifo", "/dev/full", "/missing/dir/plan.json"])
def test_a_bad_plan_target_is_one_clear_error(work, target):
    with pytest.raises(OutputFileError) as refused:
        save_plans(target, "http://kc", [], prune=False)
    assert refused.value.message.startswith(f"{target}: ")


PLAN = {"source": "realm.yaml", "state_fingerprint": "f", "content_digest": "d"}


@pytest.mark.parametrize(("doc", "expected"), [
    ("not json", "not a readable saved plan"),
    ([1], "not a kcprov saved plan"),
    ({"format": PLAN_FORMAT, "plans": []}, "damaged"),
    ({"format": PLAN_FORMAT, "plans": [{"source": "x"}]}, "damaged"),
    ({"format": PLAN_FORMAT, "plans": [{**PLAN, "source": None}]}, "damaged"),
    ({"format": PLAN_FORMAT, "prune": "yes", "plans": [PLAN]}, "damaged"),
])
def test_a_damaged_saved_plan_is_one_clear_error(work, doc, expected):
    Path("plan.json").write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(KcprovError, match=expected) as refused:
        load_saved_plan(Path("plan.json"))
    assert "kcprov plan FILE -o plan.json" in refused.value.hint


def test_a_saved_plan_is_read_as_an_input_file(work):
    with pytest.raises(KcprovError, match="fifo: the saved plan is a FIFO"):
        load_saved_plan("fifo")
    Path("plan.json").write_text(json.dumps({"format": PLAN_FORMAT, "plans": [PLAN]}))
    assert load_saved_plan("plan.json")["plans"] == [PLAN]


# ---------------------------------------------------------------- env_file in the realm file


def realm_file(path: Path, *env_files: str) -> Path:
    servers = [{"name": f"srv{i}", "url": f"http://localhost:{3000 + i}/mcp", "scopes": {f"s{i}:tools": "Tools"},
                "env_file": env_file} for i, env_file in enumerate(env_files)]
    path.write_text(yaml.safe_dump({"realm": "paths", "mcp_servers": servers}, sort_keys=False))
    return path


def test_validate_reports_env_files_that_no_flag_can_fix_at_file_line(work):
    path = realm_file(work / "realm.yaml", "srv/", "ok/.env", "dir/..", "../checked/at/apply.env")
    with pytest.raises(SpecError) as invalid:
        load_realm(path)
    lines = path.read_text().splitlines()
    found = {lines[p.line - 1].strip(): p for p in invalid.value.problems}
    assert set(found) == {"env_file: srv/", "env_file: dir/.."}
    assert found["env_file: srv/"].message == "env_file 'srv/' names a directory"
    assert "must not end in '/'" in found["env_file: srv/"].hint
    path = realm_file(work / "escape.yaml", "x\x1b[2J.env")
    with pytest.raises(SpecError) as invalid:
        load_realm(path)
    [problem] = invalid.value.problems
    assert path.read_text().splitlines()[problem.line - 1].strip() == 'env_file: "x\\e[2J.env"'
    assert "\x1b" not in str(invalid.value)


def spec(*env_files: str) -> RealmSpec:
    return RealmSpec.model_validate({"realm": "paths", "mcp_servers": [
        {"name": f"srv{i}", "url": f"http://localhost:{3000 + i}/mcp", "scopes": {f"s{i}:tools": "Tools"},
         "env_file": env_file} for i, env_file in enumerate(env_files)]})


def test_check_env_targets_lists_every_bad_target_and_writes_nothing(work):
    (work / "ours.env").write_text(f"{HEADER}realm.yaml (realm 'paths', MCP server 'srv0').\nKEY=1\n")
    os.symlink("ours.env", work / "to-ours")
    before = listing(work.parent)
    check_env_targets(spec("ok.env", "new/dir/.env", "ours.env", "to-ours"))
    with pytest.raises(OutputFileError) as refused:
        check_env_targets(spec("ok.env", "dir", "../outside/x.env", "fifo", "file.txt", "to-file"))
    message = str(refused.value)
    assert "dir: the env_file of MCP server 'srv1' is a directory" in message
    assert "../outside/x.env: the env_file of MCP server 'srv2' resolves to" in message
    assert "fifo: the env_file of MCP server 'srv3' is a FIFO" in message
    assert "file.txt: the env_file of MCP server 'srv4' exists and was not written by kcprov" in message
    assert "to-file: the env_file of MCP server 'srv5' exists and was not written by kcprov" in message
    assert "srv0" not in message
    check_env_targets(spec("../outside/x.env"), allow_outside=[work.parent / "outside"])
    check_env_targets(spec("ok.env", "dir"), only="srv0")
    assert listing(work.parent) == before


def test_write_env_files_writes_none_when_one_target_is_bad(work):
    jwt_only = SimpleNamespace(settings=SimpleNamespace(url="http://localhost:8080"))  # jwt mode asks Keycloak nothing
    before = listing(work.parent)
    with pytest.raises(OutputFileError, match="srv1' is a directory"):
        write_env_files(jwt_only, spec("new/ok.env", "dir"))
    assert listing(work.parent) == before
    assert write_env_files(jwt_only, spec("new/ok.env", "to-outside/x.env"), allow_outside=[work.parent / "outside"]) == [
        (Path("new/ok.env"), True), (Path("to-outside/x.env"), True)]


def cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from kcprov.cli import main; main()", *args], cwd=cwd,
                          env={**os.environ, "COLUMNS": "500", "NO_COLOR": "1", **env}, capture_output=True, text=True,
                          timeout=300)


def test_plan_output_targets_through_the_cli(work, keycloak, realm_name):
    path = work / "realm.yaml"
    path.write_text(yaml.safe_dump({"realm": realm_name, "roles": [{"name": "reader"}]}))
    env = {"KCPROV_URL": keycloak.url, "KCPROV_USER": keycloak.user, "KCPROV_PASSWORD": keycloak.password}
    printed = cli("plan", str(path), "-o", "-", cwd=work, env=env)
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout)["plans"][0]["realm"] == realm_name
    before = listing(work.parent)
    for target, expected in [("/dev/full", "is a character device"), ("dir", "is a directory"),
                             ("fifo", "is a FIFO"), ("/missing/dir/plan.json", "directory /missing/dir does not exist"),
                             ("/dev/stdout", "use `-o -` to write to standard output")]:  # a pipe here
        refused = cli("plan", str(path), "-o", target, cwd=work, env=env)
        assert refused.returncode == 1, (target, refused.stderr)
        assert expected in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    assert listing(work.parent) == before
    assert not os.path.lexists("/missing")


@pytest.mark.parametrize("env_file", ["dir", "../outside/x.env"])
def test_apply_refuses_a_bad_env_file_before_any_change(work, keycloak, realm_name, env_file):
    path = work / "realm.yaml"
    path.write_text(yaml.safe_dump({"realm": realm_name, "mcp_servers": [
        {"name": "calc", "url": "http://localhost:3999/mcp", "scopes": {"calc:tools": "Tools"},
         "env_file": env_file}]}, sort_keys=False))
    env = {"KCPROV_URL": keycloak.url, "KCPROV_USER": keycloak.user, "KCPROV_PASSWORD": keycloak.password}
    before = listing(work.parent)
    done = cli("apply", str(path), "--auto-approve", cwd=work, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert f"{env_file}: the env_file of MCP server 'calc'" in done.stderr
    assert listing(work.parent) == before
    realms = [r["realm"] for r in keycloak.admin().get_realms()]
    assert realm_name not in realms
