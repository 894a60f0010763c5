"""MkDocs hook: the site is built from the same Markdown GitHub shows, without copies.

The README is the home page and SECURITY.md (and any repository file mkdocs.yml's nav
names outside docs/) is a page; files those pages link to outside docs/ (realms/*.yaml,
examples/) are served at their repository path, and a linked directory gets a page
listing its files, as GitHub shows one. Links are written for the repository
(`docs/groups.md` in the README, `../realms/x.yaml` in a docs page), so each relative link
is resolved against the page's place in the repository and rewritten for its place in the
site. A link to a file that exists nowhere is left as written, for `mkdocs build --strict`
to report.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, Files, InclusionLevel

_LINK = re.compile(r"(\]\()([^)\s#]+)(#[^)\s]*)?(\))")
_DOCS = "docs/"


def on_files(files: Files, config) -> Files:
    root = Path(config.config_file_path).parent
    for path in _nav_paths(config["nav"] or []):
        if files.get_file_from_path(path) is None and (root / path).is_file():
            files.append(_repository_file(path, root, config))
    for page in [f for f in files if f.is_documentation_page() and f.abs_src_path]:
        for target in _targets(_repository_path(page, root), Path(page.abs_src_path).read_text(encoding="utf-8")):
            if (root / target).is_dir() and target != "docs" and not target.startswith(_DOCS):
                _add_listing(target, root, files, config)
            elif files.get_file_from_path(_site_path(target)) is None and (root / target).is_file():
                files.append(_repository_file(target, root, config))
    return files


def _add_listing(directory: str, root: Path, files: Files, config) -> None:
    """A page listing a directory's files (dot files too: .gitlab-ci.yml), each served."""
    if files.get_file_from_path(f"{directory}/index.md") is not None:
        return
    entries = sorted(p.name for p in (root / directory).iterdir() if p.is_file() and p.suffix != ".pyc")
    for name in entries:
        if files.get_file_from_path(f"{directory}/{name}") is None:
            files.append(_repository_file(f"{directory}/{name}", root, config))
    lines = [f"# {directory}/", "", *(f"- [{name}]({name})" for name in entries)]
    page = File.generated(config, f"{directory}/index.md", content="\n".join(lines) + "\n", inclusion=InclusionLevel.NOT_IN_NAV)
    files.append(page)


def on_page_markdown(markdown: str, page, config, files: Files) -> str:
    root = Path(config.config_file_path).parent
    here = _repository_path(page.file, root)

    def rewrite(match: re.Match[str]) -> str:
        target = _resolve(here, match[2])
        if target is not None and (root / target).is_dir():
            target = f"{target}/index.md"
        if target is None or files.get_file_from_path(_site_path(target)) is None:
            return match[0]
        link = posixpath.relpath(_site_path(target), posixpath.dirname(page.file.src_uri) or ".")
        return f"{match[1]}{link}{match[3] or ''}{match[4]}"

    return _LINK.sub(rewrite, markdown)


def _nav_paths(nav) -> list[str]:
    if isinstance(nav, str):
        return [] if "://" in nav else [nav]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in _nav_paths(value)]
    return [p for item in nav for p in _nav_paths(item)]


def _repository_file(path: str, root: Path, config) -> File:
    return File(path, str(root), config["site_dir"], config["use_directory_urls"], inclusion=InclusionLevel.INCLUDED)


def _repository_path(file: File, root: Path) -> str:
    """Where a page's source sits in the repository (`docs/groups.md`, `README.md`); a
    generated listing page sits in the directory it lists."""
    if not file.abs_src_path:
        return file.src_uri
    return Path(file.abs_src_path).resolve().relative_to(root.resolve()).as_posix()


def _targets(here: str, markdown: str) -> list[str]:
    return [t for m in _LINK.finditer(markdown) if (t := _resolve(here, m[2])) is not None]


def _resolve(here: str, link: str) -> str | None:
    """A relative link's target as a repository path, or None (a URL, or outside the repository)."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", link) or link.startswith("/"):
        return None
    target = posixpath.normpath(posixpath.join(posixpath.dirname(here), link))
    return None if target.startswith("..") else target


def _site_path(target: str) -> str:
    return target.removeprefix(_DOCS)
