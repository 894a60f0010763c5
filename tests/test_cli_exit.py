"""The `kcprov` script ends its process without Python's teardown (`kcprov.cli.run`): nothing else may change.

Each case is a real process, the way a shell or CI runs kcprov: exit codes,
complete output through a pipe, the message of a `sys.exit("text")`, exit
handlers, and the normal exit while a thread still runs.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from kcprov import __version__


def _run(*args: str, code: str | None = None, **kwargs) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "kcprov", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, **kwargs)


def test_exit_codes_and_output_are_those_of_main(tmp_path):
    version = _run("--version")
    assert (version.returncode, version.stderr) == (0, "")
    assert version.stdout.startswith(f"kcprov {__version__} ")
    missing = _run("validate", str(tmp_path / "missing.yaml"))
    assert missing.returncode == 1
    assert "cannot read the file" in missing.stderr and "Traceback" not in missing.stderr
    usage = _run("validate", "--no-such-option")
    assert usage.returncode == 2 and "No such option" in usage.stderr


def test_long_output_through_a_pipe_arrives_whole():
    shown = _run("--help")
    assert shown.returncode == 0
    assert shown.stdout.rstrip().endswith("╯")  # the last line of the command table was flushed


def test_a_text_exit_prints_the_text_and_exits_1_as_python_does():
    done = _run(code="import sys, kcprov.cli as cli; cli.main = lambda: sys.exit('stopped'); cli.run()")
    assert (done.returncode, done.stderr) == (1, "stopped\n")


def test_exit_handlers_run_and_a_running_thread_is_waited_for():
    done = _run(code=textwrap.dedent("""
        import atexit, sys, threading, time
        import kcprov.cli as cli
        def work():
            time.sleep(0.5)
            print("thread finished", flush=True)
        def main():
            atexit.register(lambda: print("handler ran", flush=True))
            threading.Thread(target=work).start()
            sys.exit(3)
        cli.main = main
        cli.run()
    """))
    assert done.returncode == 3
    assert done.stdout.splitlines() == ["thread finished", "handler ran"]


def test_exit_handlers_run_on_the_fast_exit_too():
    done = _run(code=textwrap.dedent("""
        import atexit, sys
        import kcprov.cli as cli
        def main():
            atexit.register(lambda: print("handler ran"))  # not flushed by the handler: run() flushes after it
            print("work done")
        cli.main = main
        cli.run()
    """))
    assert (done.returncode, done.stdout.splitlines()) == (0, ["work done", "handler ran"])
