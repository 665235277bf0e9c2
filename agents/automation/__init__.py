"""Automation: an accepted test case -> a reviewed browser spec or HTTP API test (``automation.generate``).

Importing this package has no side effects; the kind, store and routes exist once built.
"""

from agents.automation.routes import automation_routes
from agents.automation.service import AutomationService
from agents.automation.store import AutomationStore
from agents.automation.validate import check_text, infer_target, validate_body
from agents.automation.workflow import AutomationInput, automation_kind, check_review

__all__ = [
    "AutomationInput",
    "AutomationService",
    "AutomationStore",
    "automation_kind",
    "automation_routes",
    "check_review",
    "check_text",
    "infer_target",
    "validate_body",
]
