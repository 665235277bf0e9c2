"""Test-case generation: requirement points, the heuristic baseline, coverage, dedupe and exports.

The modules here are pure (no I/O, no LLM, no database); the ``testcase.generate`` task, the
store and the routes call them. Importing this package has no side effects.
"""

from agents.testcases.coverage import coverage
from agents.testcases.dedupe import case_text, near_duplicates
from agents.testcases.export import export_csv, export_json, export_markdown, export_xlsx
from agents.testcases.heuristic import heuristic_cases, infer_module
from agents.testcases.points import detect_language, split_requirement
from agents.testcases.schemas import (
    CaseDraft,
    CaseType,
    Coverage,
    GenerationOptions,
    GenerationOutput,
    PointCoverage,
    Priority,
    RequirementPoint,
    Step,
    TestCase,
    semantic_errors,
    validate_output,
)

__all__ = [
    "CaseDraft",
    "CaseType",
    "Coverage",
    "GenerationOptions",
    "GenerationOutput",
    "PointCoverage",
    "Priority",
    "RequirementPoint",
    "Step",
    "TestCase",
    "case_text",
    "coverage",
    "detect_language",
    "export_csv",
    "export_json",
    "export_markdown",
    "export_xlsx",
    "heuristic_cases",
    "infer_module",
    "near_duplicates",
    "semantic_errors",
    "split_requirement",
    "validate_output",
]
