"""The prompt registry: versioned prompt templates, labels, rollback and per-version results.

``prompts/*.yaml`` files are loaded as immutable, content-hashed versions on
start (:mod:`.loader`); labels pick the version a call runs (:mod:`.registry`);
a chat request names a prompt in its ``prompt`` field (:mod:`.use`); the REST
API is :mod:`.routes` and per-version results :mod:`.stats`.
"""

from .loader import PromptFileError, default_directory, load_directory, read_file
from .registry import CANARY, PRODUCTION, Move, PromptRegistry, PromptVersion
from .routes import prompt_routes
from .spec import Draft, PromptSpec, from_data, from_yaml
from .use import PromptCall, prepare

__all__ = [
    "CANARY",
    "PRODUCTION",
    "Draft",
    "Move",
    "PromptCall",
    "PromptFileError",
    "PromptRegistry",
    "PromptSpec",
    "PromptVersion",
    "default_directory",
    "from_data",
    "from_yaml",
    "load_directory",
    "prepare",
    "prompt_routes",
    "read_file",
]
