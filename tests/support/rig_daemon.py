"""`dongled` as its own processes for a rig: `dongled run` under umockdev-wrapper with a real
NOTIFY_SOCKET, and one-shot CLI calls as an admin runs them."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class DaemonRunner:
    """Runs `dongled --config <settings>` in `tmp`; the daemon's output goes to `log_path`,
    its sd_notify messages to `notifications`."""

    def __init__(self, tmp: Path, settings: Path) -> None:
        self.tmp, self.settings = tmp, settings
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = tmp / "daemon.log"  # appended to by each start
        self.notify_path = tmp / "notify.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.notify.settimeout(0.1)
        self.notifications: list[str] = []

    def _argv(self, args: Sequence[str]) -> list[str]:
        return ["umockdev-wrapper", sys.executable, "-m", "dongled", "--config",
                str(self.settings), *args]  # fmt: skip

    def cli(self, env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        """`dongled --config <settings> ARGS` as its own process, to its end."""
        return subprocess.run(
            self._argv(args),
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=str(self.tmp),
            check=False,
        )

    def start(self, env: Mapping[str, str], args: Sequence[str]) -> None:
        """`dongled ARGS` in the background, told where to send its notifications."""
        env = {**env, "NOTIFY_SOCKET": str(self.notify_path)}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self._argv(args), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(self.tmp)
        )
        log.close()

    def stop(self) -> int:
        """SIGTERM, and its exit status (killed, and the timeout raised, after 10 s)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        proc.terminate()
        try:
            return proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def poll_notifications(self) -> None:
        while True:
            try:
                self.notifications.append(self.notify.recv(4096).decode())
            except (TimeoutError, BlockingIOError):
                return

    def wait_notification(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll_notifications()
            if any(text in n for n in self.notifications):
                return
            self.assert_alive()
        raise TimeoutError(f"no {text!r} from the daemon; log:\n{self.log()}")

    def assert_alive(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, (
            f"daemon exited ({self.proc and self.proc.returncode}); log:\n{self.log()}"
        )

    def close(self) -> None:
        self.notify.close()
