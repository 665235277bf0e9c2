"""XMind (``.xmind``, XMind Zen / 2020+ format): requirement › modules › cases › steps › expected results.

What this follows:

- The file is a ZIP archive holding ``content.json`` (a list of sheets, each
  ``{id, class: "sheet", title, rootTopic}``; a topic is ``{id, class:
  "topic", title, children: {attached: [topics]}, notes: {plain: {content}},
  labels: [..], markers: [{markerId}]}``), ``metadata.json`` and
  ``manifest.json`` (``{"file-entries": {name: {}}}``). These are the keys the
  common readers use, e.g. github.com/tobyqin/xmindparser ``zenreader.py``
  (content.json, rootTopic, children.attached, notes.plain.content, labels,
  markers[].markerId).
- The tree is the layout test teams (MeterSphere, xmind2testcase users) write
  cases in: the root is the requirement, its children the modules, then one
  topic per case, under it one topic per step and under each step its
  expected result. Preconditions go in the case's notes, priority is a
  ``priority-1`` … ``priority-4`` marker (P0 … P3).

Each case topic is labelled with its marking ("rule-based draft: review
before use" or "reviewed"), its type and its priority, and its notes name
the aitp case id and the requirement points it covers. Topic ids are derived
from the case ids, and the archive's timestamps are fixed, so the same cases
give the same bytes.
"""

from __future__ import annotations

import json
import zipfile
from io import BytesIO
from typing import Any

from .export_base import ExportDocument, action_text, marking
from .schemas import TestCase

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest ZIP timestamp: no clock in the bytes
_MARKER = {"P0": "priority-1", "P1": "priority-2", "P2": "priority-3", "P3": "priority-4"}


def write_xmind(document: ExportDocument) -> bytes:
    modules: dict[str, list[TestCase]] = {}
    for case in document.cases:
        modules.setdefault(case.module, []).append(case)
    root = _topic("root", document.title)
    root["structureClass"] = "org.xmind.ui.logic.right"
    root["children"] = {
        "attached": [
            _topic(f"module-{number}", module, [_case(document, case) for case in cases])
            for number, (module, cases) in enumerate(modules.items(), start=1)
        ]
    }
    content = [{"id": "sheet-1", "class": "sheet", "title": document.title, "rootTopic": root}]
    metadata = {"dataStructureVersion": "2", "creator": {"name": "aitp"}, "layoutEngineVersion": "3"}
    manifest: dict[str, Any] = {"file-entries": {"content.json": {}, "metadata.json": {}}}
    out = BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, value in (("content.json", content), ("metadata.json", metadata), ("manifest.json", manifest)):
            entry = zipfile.ZipInfo(name, date_time=_EPOCH)
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, json.dumps(value, ensure_ascii=False).encode("utf-8"))
    return out.getvalue()


def _case(document: ExportDocument, case: TestCase) -> dict[str, Any]:
    t, lang = document.t, document.lang
    steps = [
        _topic(
            f"{case.id}-s{step.step}",
            f"{step.step}. {action_text(step, lang)}",
            [_topic(f"{case.id}-e{step.step}", step.expected)],
        )
        for step in case.steps
    ]
    topic = _topic(case.id, case.title, steps)
    topic["labels"] = [marking(case, lang), t(case.type), case.priority]
    topic["markers"] = [{"markerId": _MARKER[case.priority]}]
    notes = [f"aitp {t('id')}: {case.id}", f"{t('covers')}: {', '.join(case.covers)}"]
    if case.preconditions:
        notes += [f"{t('preconditions')}:", *(f"- {p}" for p in case.preconditions)]
    topic["notes"] = {"plain": {"content": "\n".join(notes)}}
    return topic


def _topic(topic_id: str, title: str, children: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    topic: dict[str, Any] = {"id": topic_id, "class": "topic", "title": title}
    if children:
        topic["children"] = {"attached": children}
    return topic
