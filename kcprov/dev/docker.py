"""The dev Keycloak as a container (``kcprov dev up --docker``), via the Docker SDK.

Runs the official image with the same ``start-dev`` options and environment
as the native mode; the runner treats a container id like a pid. The SDK is an
optional extra and most laptops in CI have no engine, so both cases end in a
clear DevServerError pointing at the native mode, which needs only Java.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from kcprov.errors import DevServerError

IMAGE = "quay.io/keycloak/keycloak"
CONTAINER_HTTP_PORT = 8080
CONTAINER_MANAGEMENT_PORT = 9000
_NATIVE_HINT = "drop --docker to run Keycloak natively (needs only Java 17+)."


def start(
    version: str, args: Sequence[str], port: int, management_port: int, env: Mapping[str, str]
) -> str:
    """Run ``IMAGE:version`` with ``args`` and ``env``; returns the container id."""
    import docker

    client = _client()
    try:
        container = client.containers.run(
            f"{IMAGE}:{version}",
            list(args),
            detach=True,
            environment=dict(env),
            ports={
                f"{CONTAINER_HTTP_PORT}/tcp": port,
                f"{CONTAINER_MANAGEMENT_PORT}/tcp": management_port,
            },
            labels={"org.kcprov.dev": "1"},
        )
    except docker.errors.DockerException as exc:
        raise DevServerError(
            f"Docker could not start {IMAGE}:{version}: {exc}", hint=_NATIVE_HINT
        ) from None
    return container.id


def running(container_id: str) -> bool:
    import docker

    try:
        return _client().containers.get(container_id).status in ("created", "running")
    except docker.errors.NotFound:
        return False


def stop(container_id: str, grace: float) -> None:
    """Stop and remove the container (its data goes with it; the password is kept)."""
    import docker

    try:
        container = _client().containers.get(container_id)
        container.stop(timeout=int(grace))
        container.remove()
    except docker.errors.NotFound:
        pass


def logs(container_id: str, lines: int) -> str:
    return _client().containers.get(container_id).logs(tail=lines).decode(errors="replace")


def follow(container_id: str, lines: int) -> Iterator[str]:
    stream = _client().containers.get(container_id).logs(stream=True, follow=True, tail=lines)
    for chunk in stream:
        yield chunk.decode(errors="replace")


def _client() -> Any:
    try:
        import docker
    except ImportError:
        raise DevServerError(
            "--docker needs the Docker SDK for Python, which is not installed.",
            hint=f"`pip install 'kcprov[docker]'`, or {_NATIVE_HINT}",
        ) from None
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException:
        where = os.environ.get("DOCKER_HOST") or "the default socket"
        raise DevServerError(
            f"No Docker engine is reachable at {where}.", hint=f"start Docker, or {_NATIVE_HINT}"
        ) from None
    return client
