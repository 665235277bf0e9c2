"""Gateway overhead bench: settings, reference figures, targets and the result records."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
PROXY_VENV = REPO / "bench" / ".venv-litellm-proxy"
RESULTS = REPO / "bench" / "results" / "gateway_overhead.json"
LITELLM_VERSION = "1.106.2"
CHAT_PATH = "/v1/chat/completions"
PROMPT = "Say hello to the gateway benchmark."

DIRECT, AITP, PROXY = "direct", "aitp", "litellm-proxy"
NON_STREAM, STREAM = "non-stream", "stream"
TARGET_NAMES = (DIRECT, AITP, PROXY)

# Keeps litellm (library and proxy) from fetching anything off this machine at start.
OFFLINE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "NO_DOCS": "True",
    "NO_REDOC": "True",
}


# Reference measurements of LiteLLM proxy 1.106.2 on this machine (one worker).
@dataclass(frozen=True)
class Reference:
    proxy_added_c1_ms: dict[str, tuple[float, float]]  # mode -> (p50, p99)
    proxy_rps_c50: dict[str, float]
    direct_rps_c50: dict[str, float]
    proxy_rss_mb: float
    proxy_startup_s: float


REFERENCE = Reference(
    proxy_added_c1_ms={"non-stream": (11.0, 17.6), "stream": (16.9, 25.6)},
    proxy_rps_c50={"non-stream": 113.0, "stream": 57.0},
    direct_rps_c50={"non-stream": 415.0, "stream": 373.0},
    proxy_rss_mb=405.0,
    proxy_startup_s=5.0,
)
TARGET_ADDED_C1_MS = {NON_STREAM: (3.0, 6.0), STREAM: (4.0, 8.0)}
TARGET_RPS_RATIO = 1.5
TARGET_RSS_MB = 250.0

STARTUP_TIMEOUT_S = 180.0
REQUEST_TIMEOUT_S = 60.0
PHASE_TIMEOUT_S = 900.0
NOISY_OTHER_CPU_PCT = 15.0
MIN_WALL_FOR_CPU_S = 1.0  # CPU is counted in 10 ms ticks: shorter phases give no useful percentages


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Sizes:
    seq: int  # requests per mode at concurrency 1
    non_stream: int  # requests at the high concurrency
    stream: int
    concurrency: int

    def count(self, mode: str, concurrency: int) -> int:
        if concurrency == 1:
            return self.seq
        return self.stream if mode == STREAM else self.non_stream

    def warmup(self, concurrency: int) -> int:
        return 20 if concurrency == 1 else max(concurrency, 100)


@dataclass
class Phase:
    mode: str
    concurrency: int
    requests: int
    ok: int
    errors: int
    wall_s: float
    rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    client_cpu_pct: float  # the load generator, % of one core
    servers_cpu_pct: float  # fake upstream + gateway
    other_cpu_pct: float  # everything else on the machine: noise
    error_samples: list[str] = field(default_factory=list)

    def cpu_summary(self) -> str:
        """client/servers/other CPU in % of one core, or '-' when the phase was too short to tell."""
        if self.wall_s < MIN_WALL_FOR_CPU_S:
            return "-"
        return f"{self.client_cpu_pct:.0f}/{self.servers_cpu_pct:.0f}/{self.other_cpu_pct:.0f}"


@dataclass
class LegResult:
    target: str
    latency_ms: float
    startup_s: float | None = None
    rss_mb: float | None = None
    phases: list[Phase] = field(default_factory=list)
    error: str | None = None
    log_tail: str | None = None  # the server's last log lines when the leg failed

    def phase(self, mode: str, concurrency: int) -> Phase | None:
        for p in self.phases:
            if p.mode == mode and p.concurrency == concurrency:
                return p
        return None


@dataclass(frozen=True)
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path


Launcher = Callable[[int, Path], Server]  # (fake upstream port, work dir) -> started server


@dataclass(frozen=True)
class Leg:
    """Where to send the load and how to start the server that answers it."""

    name: str
    model: str
    key: str
    launch: Launcher | None
