"""A real GNU Mailman 3 core for the tests: the `mailman` package from PyPI in its own venv
(`make mailman` builds `.venv-mailman/`, outside the project lock), started in a temp folder
with its REST API on a free loopback port, SQLite, and no MTA (NullMTA: nothing is mailed).
Stopped with `mailman stop`, which ends only the master this fixture started (its pid file)."""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx

from orchestration.engine.ports import free_port
from tests.servers.common import Faults, PlatformServer, Reply, Request

REPO = Path(__file__).resolve().parents[2]
MAILMAN = REPO / ".venv-mailman" / "bin" / "mailman"
USER, PASSWORD = "restadmin", "restpass-local"


def available() -> bool:
    """Whether `make mailman` has built the Mailman venv."""
    return MAILMAN.exists()


class MailmanCore:
    """One Mailman core process tree for a test (see the module docstring)."""

    def __init__(self, folder: Path, domain: str = "lists.example.org") -> None:
        self.folder, self.domain = folder, domain
        self.port = free_port()
        self.config = folder / "mailman.cfg"
        self.url = f"http://127.0.0.1:{self.port}/3.1"
        folder.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f"""[mailman]
site_owner: postmaster@{domain}
layout: local

[paths.local]
var_dir: {folder / "var"}

[webservice]
hostname: 127.0.0.1
port: {self.port}
admin_user: {USER}
admin_pass: {PASSWORD}

[mta]
incoming: mailman.mta.null.NullMTA
smtp_host: 127.0.0.1
smtp_port: {free_port()}
lmtp_host: 127.0.0.1
lmtp_port: {free_port()}
"""
        )

    def _cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        root = ["--run-as-root"] if os.geteuid() == 0 else []
        # output to a file, not a pipe: the master it starts keeps the descriptors open
        log = self.folder / "cli.log"
        with log.open("a") as out:
            done = subprocess.run(
                [str(MAILMAN), *root, "-C", str(self.config), *args],
                cwd=self.folder, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                timeout=timeout, check=False,
            )  # fmt: skip
        done.stderr = log.read_text()[-4000:]
        return done

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method, f"{self.url}{path}", auth=(USER, PASSWORD), timeout=30, **kwargs
        )

    def __enter__(self) -> MailmanCore:
        started = self._cli("start")
        if started.returncode != 0:
            raise RuntimeError(f"mailman start failed: {started.stderr[-2000:]}")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/system/versions").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            self.__exit__()
            raise RuntimeError("mailman's REST API did not come up within 120 s")
        self.request("POST", "/domains", data={"mail_host": self.domain}).raise_for_status()
        return self

    def create_list(self, name: str) -> str:
        """A new list; returns its list_id (`name.domain`)."""
        answer = self.request("POST", "/lists", data={"fqdn_listname": f"{name}@{self.domain}"})
        answer.raise_for_status()
        return f"{name}.{self.domain}"

    def roster(self, list_id: str) -> set[str]:
        """The emails subscribed to the list, read from Mailman itself."""
        answer = self.request("GET", f"/lists/{list_id}/roster/member")
        answer.raise_for_status()
        return {entry["email"] for entry in answer.json().get("entries", [])}

    def __exit__(self, *exc: Any) -> None:
        self._cli("stop", timeout=60)
        pid_file = self.folder / "var" / "master.pid"
        deadline = time.monotonic() + 30
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.5)


class MailmanFaultProxy(PlatformServer):
    """A loopback proxy in front of a Mailman core's REST API, so a real Mailman meets the same
    faults as the other platforms' servers: writes (POST /members, DELETE /members/<id>) draw a
    fault (429 + Retry-After and 503 are answered without reaching Mailman; a timeout reaches
    Mailman and is answered too late). A subscription of an address in `invalid_emails` is
    refused as Mailman refuses an address it cannot take (400 with a `description`). State:
    `applied` counts the subscriptions Mailman created (201) per lower-cased address."""

    def __init__(
        self, core: MailmanCore, faults: Faults, invalid_emails: set[str] | None = None
    ) -> None:
        super().__init__(faults)
        self.target = f"http://127.0.0.1:{core.port}"
        self.invalid_emails = {e.lower() for e in invalid_emails or ()}
        self.applied: Counter[str] = Counter()
        self.http = httpx.Client(timeout=30)

    def handle(self, request: Request) -> Reply:
        write = request.path.startswith("/3.1/members") and request.method in ("POST", "DELETE")
        subscriber = ""
        if write and request.method == "POST":
            subscriber = parse_qs(request.raw.decode()).get("subscriber", [""])[0].lower()
            if subscriber in self.invalid_emails:
                return Reply(400, {"title": "400 Bad Request",
                                   "description": f"Invalid email address: {subscriber}"})  # fmt: skip
        fault = self.draw() if write else None
        if fault == "rate_limit":
            return Reply(429, {"title": "Too Many Requests"},
                         {"Retry-After": str(self.faults.retry_after_seconds)})  # fmt: skip
        if fault == "server_error":
            return Reply(503, {"title": "Service Unavailable"})
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("authorization", "content-type")}  # fmt: skip
        url = self.target + request.path + (f"?{urlencode(request.query)}" if request.query else "")
        answer = self.http.request(request.method, url, content=request.raw, headers=headers)
        if subscriber and answer.status_code == 201:
            with self.lock:
                self.applied[subscriber] += 1
        body = answer.json() if answer.content else None
        return self.applied_then_late(Reply(answer.status_code, body), fault)

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        self.http.close()
