"""One error hierarchy for the whole library.

Library code raises these; only `compose.cli` catches them, prints the one-line
message to stderr and exits with `exit_code`. Every message names the fix.
"""

from __future__ import annotations

# Exit codes, shared by every command.
EXIT_OK = 0
EXIT_FINDINGS = 1  # drift, failed checks, policy findings
EXIT_INVALID = 2  # invalid input or environment: unknown model, bad name, does not fit, read-only checkout, ...
EXIT_INTERNAL = 3  # an unexpected internal error (a bug): one line plus where the traceback was saved
EXIT_INTERRUPTED = 130  # SIGINT/SIGTERM


class ComposeError(Exception):
    """Base class. `str(err)` is a single user-facing line that names the fix."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # one line, always
        return " ".join(self.message.split())


class InvalidInput(ComposeError):
    """Bad user input: unknown names, malformed files, invalid options."""


class UnknownModel(InvalidInput):
    pass


class UnknownGPU(InvalidInput):
    pass


class ConfigError(InvalidInput):
    """A malformed or unsupported Hugging Face config.json."""


class DoesNotFit(InvalidInput):
    """The planner found no configuration that serves the request."""

    def __init__(self, message: str, plan=None):
        super().__init__(message)
        self.plan = plan


class InvalidName(InvalidInput):
    pass


class OverlayExists(InvalidInput):
    pass


class NotOurs(InvalidInput):
    """A directory or file exists that compose did not generate."""


class ToolMissing(ComposeError):
    """An external tool (kubectl) is not installed."""


class Interrupted(ComposeError):
    """SIGINT or SIGTERM ended the command; the message says what state the repository is in."""

    exit_code = EXIT_INTERRUPTED


class BuildFailed(ComposeError):
    """`kubectl kustomize` failed on a directory."""

    exit_code = EXIT_FINDINGS


class Findings(ComposeError):
    """A check produced findings; carries all of them, not just the first."""

    exit_code = EXIT_FINDINGS

    def __init__(self, message: str, findings: list | None = None):
        super().__init__(message)
        self.findings = list(findings or [])


class Drift(Findings):
    """Generated files differ from what the generator would write now."""


# --- talking to a live cluster (compose/cluster/, `compose doctor` and `compose status`)


class ClientMissing(ComposeError):
    """The optional Kubernetes client is not installed (`pip install 'vllm-compose[cluster]'`)."""


class ClusterError(ComposeError):
    """Base class for answers (or silence) from a live cluster."""


class ClusterUnreachable(ClusterError):
    """No cluster answers with the resolved kubeconfig (refused, timeout, TLS, 401)."""


class ClusterApiError(ClusterError):
    """The API server answered a read with an error status; checks turn it into a finding."""

    exit_code = EXIT_FINDINGS

    def __init__(self, message: str, status: int = 0, path: str = ""):
        super().__init__(message)
        self.status = status
        self.path = path


class NotFound(ClusterApiError):
    """HTTP 404: the object (or the API group) does not exist."""


class Forbidden(ClusterApiError):
    """HTTP 403: the identity in the kubeconfig may not read this."""
