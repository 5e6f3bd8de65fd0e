"""Credentials that must never reach Git: token patterns, URLs with userinfo, and
environment variables whose names say they hold a secret.

Used by `compose check` (policy rules `secret-env-inline` and `secret-in-url`, and the
repository scan over every generated file, argocd/ and flux/ included) and by the
input checks of `compose new-model --prometheus-url` and `compose gitops --repo-url`.

The token patterns are gitleaks' (gitleaks/gitleaks `config/gitleaks.toml`, v8.30.1),
kept to the providers this project can plausibly leak: GitHub (the repository URL),
Hugging Face (gated weights), GitLab, AWS, GCP, Slack, OpenAI, and private keys. A
URL with userinfo is caught whatever the token looks like (detect-secrets'
BasicAuthDetector covers only `user:password@`; a token as the user name,
`https://ghp_...@github.com`, is just as bad). Every regex here is linear: no
nested quantifiers, bounded repetitions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# (id, regex) — ids and patterns from gitleaks v8.30.1, simplified to their anchors.
TOKEN_PATTERNS: tuple[tuple[str, re.Pattern], ...] = tuple(
    (name, re.compile(rx))
    for name, rx in (
        ("github-pat", r"\bghp_[0-9a-zA-Z]{36}\b"),
        ("github-fine-grained-pat", r"\bgithub_pat_\w{82}\b"),
        ("github-oauth", r"\bgho_[0-9a-zA-Z]{36}\b"),
        ("github-app-token", r"\b(?:ghu|ghs)_[0-9a-zA-Z]{36}\b"),
        ("github-refresh-token", r"\bghr_[0-9a-zA-Z]{36}\b"),
        ("huggingface-access-token", r"\bhf_[a-zA-Z]{34}\b"),
        ("huggingface-organization-api-token", r"\bapi_org_[a-zA-Z]{34}\b"),
        ("gitlab-pat", r"\bglpat-[\w-]{20}"),
        ("aws-access-token", r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b"),
        ("gcp-api-key", r"\bAIza[\w-]{35}"),
        ("slack-token", r"\bxox[abposer]-[0-9]{10,13}-[0-9A-Za-z-]{10,80}"),
        ("slack-app-token", r"\bxapp-\d-[A-Z0-9]{1,20}-\d{1,20}-[a-z0-9]{10,80}"),
        ("openai-api-key", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,74}T3BlbkFJ[A-Za-z0-9_-]{20,74}"),
        ("private-key", r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"),
    )
)

# scheme://userinfo@ — userinfo has no '/', '@' or whitespace (RFC 3986 3.2.1).
_URL_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]{0,30})://([^/\s@'\"<>{}]{1,512})@")

# Environment variable names that say they carry a secret.
_SECRET_ENV_NAME = re.compile(
    r"(?:^|_)(?:TOKEN|API_?KEY|SECRET|PASSWORD|PASSWD|CREDENTIALS?|PRIVATE_KEY|ACCESS_KEY)(?:_|$)", re.I
)


@dataclass(frozen=True)
class Leak:
    kind: str  # token id, or "url-userinfo"
    text: str  # the matched text, redacted

    def __str__(self) -> str:
        return f"{self.kind} ({self.text})"


def redact(secret: str) -> str:
    """Enough to recognise it in the file, never the secret itself."""
    return secret[:4] + "…" if len(secret) > 8 else "…"


def url_credentials(text: str) -> list[Leak]:
    """URLs that carry credentials: any userinfo in http(s); `user:password` in others
    (a bare `ssh://git@host` user name is how SSH URLs name the account, not a secret)."""
    out = []
    for m in _URL_USERINFO.finditer(text or ""):
        scheme, userinfo = m.group(1).lower(), m.group(2)
        if scheme in ("http", "https") or ":" in userinfo:
            out.append(Leak("url-userinfo", f"{scheme}://{redact(userinfo)}@"))
    return out


def tokens(text: str) -> list[Leak]:
    """Substrings that look like a real provider token."""
    out = []
    for name, rx in TOKEN_PATTERNS:
        for m in rx.finditer(text or ""):
            out.append(Leak(name, redact(m.group(0))))
    return out


def leaks(text: str) -> list[Leak]:
    return url_credentials(text) + tokens(text)


def secret_env_name(name: str) -> bool:
    """True for HF_TOKEN, VLLM_API_KEY, AWS_SECRET_ACCESS_KEY, DB_PASSWORD, ...;
    false for TOKENIZERS_PARALLELISM, MAX_TOKENS, HF_HUB_DISABLE_TELEMETRY."""
    return bool(_SECRET_ENV_NAME.search(name or ""))


_SCP_USERINFO = re.compile(r"^([^@/\s]{1,256})@[^:/\s]{1,256}:")
# `user:password@host` anywhere, with or without a scheme (an image reference, a bare URL).
# An image's `tag@sha256:<digest>` is not one.
_USER_PASSWORD = re.compile(r"[^\s/@:]{1,256}:[^\s/@]{1,256}@(?!sha256:)[A-Za-z0-9]")


def userinfo_like(text: str) -> bool:
    """True when `text` holds `user:password@host` (with or without a scheme)."""
    return bool(_USER_PASSWORD.search(text or ""))


def git_url_problem(url: str) -> str | None:
    """Why a Git repository URL must not be written into the GitOps output, or None.

    - userinfo: `https://user:token@host/...` or `https://token@host/...` writes the
      credential into every generated file (and the replay command); SSH URLs may name
      the account (`ssh://git@host/...`, `git@host:org/repo`) but carry no password;
    - a provider token anywhere in it;
    - `{{` or `}}`: the URL is copied into the ApplicationSet, whose Go template would
      read it as a template action and fail (or worse, evaluate it).
    """
    url = url or ""
    if "{{" in url or "}}" in url:
        return "it contains a template delimiter ({{ or }}), which the ApplicationSet's Go template would evaluate"
    creds = url_credentials(url)
    if creds:
        return (f"it carries credentials ({creds[0].text}); keep them out of Git: an Argo CD repository Secret "
                "(argocd/README.md) or a Flux secretRef (flux/README.md, `--secret-ref`)")
    m = _SCP_USERINFO.match(url)
    if m and ":" in m.group(1):
        return "it carries a password in its user part; use an SSH key (Argo CD repository Secret, Flux secretRef)"
    found = tokens(url)
    if found:
        return f"it contains a {found[0].kind} token ({found[0].text}); revoke it and use a Secret instead"
    return None


__all__ = ["userinfo_like", "git_url_problem", "Leak", "TOKEN_PATTERNS", "leaks", "redact", "secret_env_name", "tokens", "url_credentials"]
