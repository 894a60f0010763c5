"""Where a dev Keycloak instance keeps its state, and the record of it.

One instance lives in one state dir (its "home"): the state file, the log and
the Keycloak server dir with its H2 database. The state file holds the admin
password, so it is written with mode 0600 and the password is hidden from
``repr``. Other modules (the connection layer, the test harness) read it with
:func:`load_state` to find the dev server and its admin credentials.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import platformdirs

from kcprov.errors import DevServerError
from kcprov.fileio import write_private

STATE_FILE = "state.json"
T = TypeVar("T")


@dataclass(frozen=True)
class DevState:
    """A dev Keycloak instance; ``pid`` (or ``container``) is None once stopped."""

    url: str
    management_url: str
    user: str
    password: str = field(repr=False)
    version: str
    port: int
    management_port: int
    features: tuple[str, ...]
    home: Path
    log_path: Path
    server_dir: Path
    started_at: str
    pid: int | None = None
    container: str | None = None

    def stopped(self) -> DevState:
        """The same instance with no process: data and credentials are kept."""
        return replace(self, pid=None, container=None)


def state_dir() -> Path:
    """The state dir: ``$KCPROV_HOME`` if set, else the user's state dir."""
    env = os.environ.get("KCPROV_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_state_dir("kcprov")) / "dev"


def load_state(home: Path | None = None) -> DevState | None:
    """The recorded instance of ``home`` (default :func:`state_dir`), or None."""
    return _load(
        (home or state_dir()) / STATE_FILE,
        "state file",
        lambda raw: DevState(
            **{
                **raw,
                "features": tuple(raw["features"]),
                "home": Path(raw["home"]),
                "log_path": Path(raw["log_path"]),
                "server_dir": Path(raw["server_dir"]),
            }
        ),
    )


def _load(path: Path, what: str, build: Callable[[dict[str, Any]], T]) -> T | None:
    """``build`` of the JSON in ``path``; None if there is none; a damaged file is a DevServerError."""
    try:
        return build(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError) as exc:
        raise DevServerError(
            f"The dev {what} {path} is damaged ({exc.__class__.__name__}).",
            hint=f"Stop any Keycloak still running from {path.parent}, then delete that folder.",
        ) from None


def save_state(state: DevState) -> None:
    """Write ``state`` to its home's state file (atomic, mode 0600)."""
    data = asdict(state)
    for key in ("home", "log_path", "server_dir"):
        data[key] = str(data[key])
    data["features"] = list(state.features)
    write_private(state.home / STATE_FILE, json.dumps(data, indent=2) + "\n")


CLUSTER_FILE = "cluster.json"


@dataclass(frozen=True)
class ClusterState:
    """A ``dev up --db postgres`` cluster: PostgreSQL, its Keycloak nodes and the balancer.

    Each node is a dev instance of its own (``node_homes``, each with its state
    file); ``state.json`` in ``home`` names the front (the balancer, or the only
    node) so ``kcprov plan`` and friends find the cluster like a single server.
    The database password sits here, so the file is 0600 and repr hides it.
    """

    home: Path
    db_port: int
    db_user: str
    db_password: str = field(repr=False)
    db_name: str
    node_homes: tuple[Path, ...]
    jgroups_ports: tuple[int, ...]
    balancer_port: int | None
    db_pid: int | None = None
    balancer_pid: int | None = None

    @property
    def db_url(self) -> str:
        return f"jdbc:postgresql://127.0.0.1:{self.db_port}/{self.db_name}"

    def stopped(self) -> ClusterState:
        return replace(self, db_pid=None, balancer_pid=None)


def load_cluster(home: Path | None = None) -> ClusterState | None:
    """The recorded cluster of ``home``, or None when ``home`` runs a single dev server."""
    return _load(
        (home or state_dir()) / CLUSTER_FILE,
        "cluster file",
        lambda raw: ClusterState(
            **{
                **raw,
                "home": Path(raw["home"]),
                "node_homes": tuple(Path(p) for p in raw["node_homes"]),
                "jgroups_ports": tuple(raw["jgroups_ports"]),
            }
        ),
    )


def save_cluster(cluster: ClusterState) -> None:
    """Write ``cluster`` to its home's cluster file (atomic, mode 0600)."""
    data = asdict(cluster)
    data["home"] = str(cluster.home)
    data["node_homes"] = [str(p) for p in cluster.node_homes]
    data["jgroups_ports"] = list(cluster.jgroups_ports)
    write_private(cluster.home / CLUSTER_FILE, json.dumps(data, indent=2) + "\n")
