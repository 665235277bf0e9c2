"""JUnit XML for a suite of browser runs: one testsuite, one testcase per spec, one failure per failed step."""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring


def junit_xml(suite_name: str, runs: list[dict[str, Any]]) -> bytes:
    failures = sum(1 for r in runs if r["status"] == "failed")
    errors = sum(1 for r in runs if r["status"] == "error")
    total_s = sum(r.get("duration_ms", 0) for r in runs) / 1000
    suite = Element(
        "testsuite",
        name=suite_name,
        tests=str(len(runs)),
        failures=str(failures),
        errors=str(errors),
        time=f"{total_s:.3f}",
    )
    for run in runs:
        case = SubElement(
            suite,
            "testcase",
            classname="aitp.browser",
            name=run["spec_name"],
            time=f"{run.get('duration_ms', 0) / 1000:.3f}",
        )
        if run["status"] == "error":
            SubElement(case, "error", message=str(run.get("error", {}).get("message", ""))[:500])
        for step in run.get("steps", []):
            if step["status"] == "failed":
                error = step.get("error") or {}
                failure = SubElement(
                    case,
                    "failure",
                    message=f"step {step['index']} ({step['action']}): {error.get('message', '')}"[:500],
                )
                failure.text = str(error.get("suggestion", ""))
        lines = [
            f"{s['index']:>3} {s['status']:<7} {s['action']:<15} {s.get('tier') or '-'} {s.get('duration_ms', 0)}ms"
            for s in run.get("steps", [])
        ]
        SubElement(case, "system-out").text = "\n".join(lines)
    body: bytes = tostring(suite, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body
