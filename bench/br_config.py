"""Budget race bench: settings, targets and the records of the run."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from harness import HOST

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_BASE = "redis://127.0.0.1:6379"
PORT_LINE = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")

REPLICAS = 4
UPSTREAM_LATENCY_MS = 20.0
FAKE_MODEL = "qwen-turbo"  # what litellm sends upstream for dashscope/qwen-turbo
FAKE_COMPLETION_TOKENS = 250  # the fake's default answer length, capped at max_tokens
PRICE_IN, PRICE_OUT = 5e-8, 2e-7  # litellm's bundled dashscope/qwen-turbo prices per token
MAX_TOKENS_RANGE = (16, 400)
PROMPT_WORDS_RANGE = (5, 150)
SEED = 20240607

TARGET_FALSE_REFUSALS = 0.05
TARGET_LEDGER_MS = (2.0, 10.0)  # p50, p99
USD_EPS = 1e-9  # the ledger's own tolerance
PROMPT_MARGIN = 0.2  # aitp's budgets.prompt_token_margin default
STARTUP_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 120.0
VOCABULARY = (
    "login page checkout cart user password reset email token session browser mobile api endpoint regression "
    "smoke boundary value negative case expected result step precondition data table timeout retry error message "
    "field validation upload download search filter sort pagination"
)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Sizes:
    burst: int
    limit_tokens: int
    paced_per_key: int


@dataclass(frozen=True)
class Spec:
    """One request of the burst, drawn from the seeded generator."""

    index: int
    replica: int
    stream: bool
    max_tokens: int
    prompt: str

    @property
    def prompt_words(self) -> int:
        return max(1, len(self.prompt.split()))  # as the fake counts prompt tokens

    def would_cost(self, completion_cap: int | None = None) -> tuple[int, float]:
        """(tokens, USD) this request would have been billed by the fake (``completion_cap``: worst case)."""
        completion = min(self.max_tokens, FAKE_COMPLETION_TOKENS if completion_cap is None else completion_cap)
        return self.prompt_words + completion, self.prompt_words * PRICE_IN + completion * PRICE_OUT


@dataclass
class Outcome:
    spec: Spec
    status: int = 0
    code: str | None = None  # error code when refused or failed
    unit: str | None = None  # budget_exceeded: which unit refused
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None  # as billed: x-aitp-cost-usd or the stream's aitp.cost_usd
    capped_max_tokens: int | None = None  # x-aitp-max-tokens: max_tokens shrunk to fit the budget
    latency_s: float = 0.0
    error: str | None = None  # anything that is neither served nor a 429

    @property
    def served(self) -> bool:
        return self.status == 200 and self.error is None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Replica:
    proc: subprocess.Popen[bytes]
    log: Path
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


@dataclass
class Setup:
    replicas: list[Replica]
    admin_key: str
    database: str
    project: str
    key: str
    budget_id: str
    limit_tokens: int
    limit_usd: float
    paced_budget_key: str
    free_key: str


@dataclass
class Ledger:
    used_tokens: float
    used_usd: float
    reserved_tokens: float
    reserved_usd: float
    current_action: str  # what /status says the budget does now ("ok", "blocking", ...)


Hist = dict[str, dict[float, float]]  # op -> upper bound -> cumulative count (summed over replicas)


@dataclass
class Cleanup:
    """What to remove at the end, filled in as it is created."""

    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    database: str | None = None
    redis_url: str | None = None
    redis_prefix: str | None = None
