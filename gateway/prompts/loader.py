"""Loading ``prompts/*.yaml`` on start: each file becomes a version; ``production`` follows the file.

A file whose content is unchanged maps to the version it already is (its
hash matches), so restarts add nothing. A changed file becomes the next
version and ``production`` moves to it, unless an admin pinned the label by
moving it through the API; then the new version is published but not live,
and the log says so. A file that does not validate stops the start, naming
the file and the problem: serving yesterday's prompt silently would be worse.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import APIError
from core.identity.audit import AuditLog
from core.identity.principal import DEFAULT_PROJECT, Principal

from .registry import FILE_ACTOR, PRODUCTION, Move, PromptRegistry, PromptVersion
from .spec import Draft, from_yaml

log = logging.getLogger("aitp.gateway.prompts")
PATTERNS = ("*.yaml", "*.yml")


class PromptFileError(Exception):
    """A prompt file cannot be loaded; the message names the file and the fix."""


@dataclass(frozen=True, slots=True)
class Loaded:
    path: Path
    version: PromptVersion
    created: bool
    move: Move | None


OnChange = Callable[[Loaded], Awaitable[None]]


def audit_changes(audit: AuditLog) -> OnChange:
    """Records what loading files changed (a new version, a production move) in the audit log."""
    loader = Principal(key_id="prompt-files", project_id=DEFAULT_PROJECT, role="admin")

    async def record(item: Loaded) -> None:
        version = item.version
        if item.created:
            detail = {"content_hash": version.content_hash, "file": item.path.name}
            await audit.record(loader, "prompt.publish", project_id=None, target=version.tag, detail=detail)
        if item.move is not None:
            await audit.record(loader, "prompt.label", project_id=None, target=version.name, detail=item.move.detail())

    return record


def default_directory(cwd: Path | None = None) -> Path | None:
    """``./prompts`` when it exists, else the ``prompts/`` beside the code (a clone or an editable install)."""
    local = (cwd or Path.cwd()) / "prompts"
    if local.is_dir():
        return local
    shipped = Path(__file__).resolve().parents[2] / "prompts"
    return shipped if shipped.is_dir() else None


def prompt_files(directory: Path) -> list[Path]:
    return sorted({p for pattern in PATTERNS for p in directory.glob(pattern) if p.is_file()})


def read_file(path: Path) -> Draft:
    """Parse and validate one prompt file; PromptFileError names the file and the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptFileError(f"{path}: cannot read it ({exc})") from None
    try:
        draft = from_yaml(text)
    except APIError as exc:
        raise PromptFileError(f"{path}: {exc.message}") from None
    if path.stem != draft.spec.name:
        raise PromptFileError(
            f"{path}: holds prompt '{draft.spec.name}'; a prompt file is named after its prompt: "
            f"rename it to {draft.spec.name}{path.suffix}"
        )
    return draft


async def load_directory(registry: PromptRegistry, directory: Path, on_change: OnChange | None = None) -> list[Loaded]:
    """Publish every prompt file in ``directory`` and let ``production`` follow it; check all files first."""
    drafts: list[tuple[Path, Draft]] = []
    for path in prompt_files(directory):
        draft = read_file(path)
        try:
            registry.check(draft)
        except APIError as exc:
            raise PromptFileError(f"{path}: {exc.message}") from None
        drafts.append((path, draft))
    loaded: list[Loaded] = []
    for path, draft in drafts:
        version, created = await registry.publish(draft, source="file", created_by=FILE_ACTOR)
        move = await registry.follow_file(version.name, version.version)
        item = Loaded(path, version, created, move)
        loaded.append(item)
        if created or move is not None:
            log.info(
                "prompt %s loaded from %s%s",
                version.tag,
                path.name,
                f"; {PRODUCTION} {move.from_version} -> {move.to_version}" if move else "",
            )
            if on_change is not None:
                await on_change(item)
    log.info("prompts loaded from %s: %s", directory, ", ".join(i.version.tag for i in loaded) or "none")
    return loaded
