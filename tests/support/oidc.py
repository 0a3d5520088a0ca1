"""A real OpenID Connect provider for tests: npm ``oidc-provider`` on 127.0.0.1.

:func:`running_provider` installs its npm dependencies when they are missing
(``oidc_provider/install.sh``), starts ``node oidc_provider/provider.mjs`` on a free
loopback port, waits for it to print ``ready``, and stops that one process by its PID
afterwards. What the provider knows (clients, groups, audiences) is fixed in
``provider.mjs`` and mirrored by the constants here.

The user side of a device flow is played by :meth:`OidcProvider.approve_device`: it
walks the provider's own development pages over HTTP (confirm the code, log in with
any password, consent), as a person in a browser would.
"""

from __future__ import annotations

import http.cookiejar
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Final

from hoopd.config_identity import OidcIssuerConfig
from hoopd.identity.device_flow import client_credentials_token, discover
from tests.support.ports import free_port

PROVIDER_DIR: Final = Path(__file__).resolve().parent / "oidc_provider"
STARTUP_DEADLINE_SECONDS: Final = 30.0
STOP_DEADLINE_SECONDS: Final = 10.0

AUDIENCE: Final = "urn:hoopd"
OTHER_AUDIENCE: Final = "urn:other"
ES256_AUDIENCE: Final = "urn:hoopd-es256"  # its tokens are signed with ES256
MACHINE_CLIENT_ID: Final = "hoopd-machine"
MACHINE_CLIENT_SECRET: Final = "machine-secret"
MACHINE_GROUPS: Final = ("robots",)
DEVICE_CLIENT_ID: Final = "hoopd-cli"
DEVICE_SCOPE: Final = "openid offline_access hoopd"
ACCOUNT_GROUPS: Final = {"alice": ("dba", "oncall"), "bob": ("dev",)}


def ensure_installed() -> None:
    """Run install.sh when node_modules is missing; raise if node or npm is absent."""
    if shutil.which("node") is None:
        raise RuntimeError("node is required for the OIDC provider (apt-get install nodejs npm)")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        subprocess.run(
            [str(PROVIDER_DIR / "install.sh")], check=True, capture_output=True, timeout=300
        )


@dataclass
class OidcProvider:
    """One provider process. ``keys_file`` keeps its signing keys across restarts."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def keys_file(self) -> Path:
        return self.workdir / "keys.json"

    @property
    def log_file(self) -> Path:
        return self.workdir / "provider.log"

    def start(self, *, rotate_keys: bool = False) -> None:
        """Start and wait for ``ready``; ``rotate_keys`` adds a new signing key first."""
        assert self.proc is None, "already running"
        argv = ["node", str(PROVIDER_DIR / "provider.mjs"), str(self.port), str(self.keys_file)]
        if rotate_keys:
            argv.append("--rotate")
        ready = self.workdir / "provider.out"
        ready.unlink(missing_ok=True)
        with ready.open("wb") as out, self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(argv, cwd=PROVIDER_DIR, stdout=out, stderr=log)
        deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
        while b"ready" not in ready.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the OIDC provider did not start:\n{self.log_text()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM to our node process by its PID; SIGKILL if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=STOP_DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_DEADLINE_SECONDS)

    def rotate_keys(self) -> None:
        """Restart on the same port with a new signing key; old keys stay published."""
        self.stop()
        self.start(rotate_keys=True)

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def issuer_config(self, **overrides: Any) -> OidcIssuerConfig:
        """An ``[[oidc.issuers]]`` entry trusting this provider for :data:`AUDIENCE`."""
        values: dict[str, Any] = {
            "name": "test-idp",
            "issuer": self.issuer,
            "audience": AUDIENCE,
            "algorithms": ("RS256",),
        }
        values.update(overrides)
        return OidcIssuerConfig(**values)

    def discovery(self) -> dict[str, Any]:
        return discover(self.issuer)

    def machine_token(self, resource: str = AUDIENCE) -> dict[str, Any]:
        """A client-credentials token response for the machine client."""
        return client_credentials_token(
            self.discovery(), MACHINE_CLIENT_ID, MACHINE_CLIENT_SECRET, resource
        )

    def approve_device(self, verification_uri_complete: str, login: str = "alice") -> None:
        """Act as ``login`` in a browser: confirm the code, sign in, consent."""
        browser = _Browser()
        page = browser.open(verification_uri_complete)
        for _ in range(8):
            if "Sign-in Success" in page:
                return
            form = _first_form(page)
            values = dict(form.fields)
            if "login" in values:
                values.update(login=login, password="any password")
            page = browser.open(form.action, values)
        raise AssertionError(f"device approval did not finish; last page:\n{page[:2000]}")

    def deny_device(self, verification_uri_complete: str) -> None:
        """Act as a user who does not recognise the code: abort at the confirm page."""
        browser = _Browser()
        form = _first_form(browser.open(verification_uri_complete))
        confirm = _first_form(browser.open(form.action, form.fields))
        page = browser.open(confirm.action, {**confirm.fields, "abort": "yes"})
        assert "Sign-in Success" not in page, page[:2000]


@contextmanager
def running_provider(workdir: Path) -> Iterator[OidcProvider]:
    """A started provider whose files live in ``workdir``; stopped on exit."""
    ensure_installed()
    provider = OidcProvider(workdir)
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


class _Browser:
    """Just enough of a browser for the provider's pages: cookies and redirects."""

    def __init__(self) -> None:
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
            urllib.request.ProxyHandler({}),  # the provider is on our loopback
        )

    def open(self, url: str, form: dict[str, str] | None = None) -> str:
        assert url.startswith("http://127.0.0.1:"), url
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        with self._opener.open(url, data=data, timeout=10) as response:
            body: bytes = response.read()
        return body.decode("utf-8", "replace")


@dataclass
class _Form:
    action: str
    fields: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(_Form(attr.get("action", "")))
        elif tag == "input" and self.forms and attr.get("name"):
            self.forms[-1].fields[attr["name"]] = attr.get("value", "")


def _first_form(page: str) -> _Form:
    parser = _FormParser()
    parser.feed(page)
    if not parser.forms:
        raise AssertionError(f"no form on the page:\n{page[:2000]}")
    return parser.forms[0]
