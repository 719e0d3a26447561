"""Suite-wide settings."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from tests.support import devguard
from tests.support.fake_asterisk import FakeAsterisk
from tests.support.fake_asterisk_quectel import PERSONALITY, make_fake_asterisk
from tests.support.fake_bench import INTERVAL, Bench, QBench

# umockdev's preload keeps a fixed 50-entry table of open /dev fds per process and aborts the
# process when it fills; the rig-heavy reliability campaigns therefore run in fresh processes
# (tests/reliability/test_rel_runner.py) and are not collected again in the main one.
collect_ignore = (
    []
    if os.environ.get("DONGLED_REL_CHILD") == "1"
    else [
        f"reliability/{name}"
        for name in (
            "test_rel_ami.py",
            "test_rel_ports.py",
            "test_rel_soak.py",
            "test_rel_faults.py",
        )
    ]
)
# The real-driver tier too runs in a fresh process of its own (tests/project/test_real_runner.py):
# each rig's testbed leaves a few fds behind, and its 70-odd rigs would push the suite's
# process past select()'s 1024 (test_testbed failed so).
if os.environ.get("DONGLED_REAL_CHILD") != "1":
    collect_ignore.append("real")

# Property tests draw the same examples on every run, so CI is a stable gate (a random draw
# once failed a full run on a case the generator should never have made). To hunt with fresh
# random examples: DONGLED_HYPOTHESIS=explore.
settings.register_profile("gate", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("DONGLED_HYPOTHESIS", "gate"))


def _guard_refuses_in_a_daemon_subprocess() -> str:
    """'' if a subprocess started as the rig starts dongled refuses a real device path."""
    root = Path(__file__).resolve().parent.parent
    code = (
        "import sys\n"
        "try:\n"
        f"    open({devguard.selftest_path()!r}, 'rb')\n"
        "except PermissionError as exc:\n"
        "    sys.exit(0 if type(exc).__name__ == 'DeviceEscapeError' else 3)\n"
        "except OSError:\n"
        "    sys.exit(3)\n"
        "sys.exit(4)\n"
    )
    env = dict(os.environ, PYTHONPATH=f"{devguard.SITE_DIR}:{root}")
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, timeout=60, check=False
    )
    return "" if proc.returncode == 0 else proc.stderr.decode(errors="replace")[-2000:]


def pytest_configure(config: pytest.Config) -> None:
    # Tests must never reach a real modem (see tests/support/devguard.py). Checked, not
    # assumed: if the guard cannot be shown to refuse a device path, nothing runs.
    devguard.install()
    os.environ[devguard.RUNNER_ENV] = str(os.getpid())  # its ptys are the tests' own
    try:
        with open(devguard.selftest_path(), "rb"):
            pass
    except devguard.DeviceEscapeError:
        pass
    except OSError as exc:
        pytest.exit(
            f"devguard: the device guard is not active in pytest ({exc}); refusing to "
            "run, a test could open a real tty",
            returncode=3,
        )
    else:
        pytest.exit(
            "devguard: a device path outside the testbed opened; refusing to run", returncode=3
        )
    problem = _guard_refuses_in_a_daemon_subprocess()
    if problem:
        pytest.exit(
            "devguard: a daemon subprocess would not refuse a real tty; refusing to "
            f"run:\n{problem}",
            returncode=3,
        )


def pytest_report_header(config: pytest.Config) -> str:
    real = sorted(str(p) for pat in ("ttyUSB*", "ttyACM*") for p in Path("/dev").glob(pat))
    seen = f"{len(real)} real serial device(s) on this machine" if real else "no real serial device"
    return f"devguard: active in pytest and daemon subprocesses ({seen}; tests cannot open any)"


@pytest.fixture(autouse=True)
def _no_device_escape() -> Iterator[None]:
    before = len(devguard.escapes())
    yield
    escaped = devguard.escapes()[before:]
    assert not escaped, f"the test tried to open device nodes outside its testbed: {escaped}"


# --- the test Asterisk on a bench of simulated sticks (tests/support/fake_bench.py) ---------


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    b = Bench(tmp_path)
    yield b
    b.close()


@pytest.fixture
def make_fake(bench: Bench) -> Iterator[Callable[..., FakeAsterisk]]:
    fakes: list[FakeAsterisk] = []

    def make(**kwargs: Any) -> FakeAsterisk:
        kwargs.setdefault("interval", INTERVAL)
        kwargs.setdefault("init_timeout", 1.0)
        fake = FakeAsterisk(str(bench.conf), lock_dir=str(bench.locks), **kwargs)
        fake.start()
        fakes.append(fake)
        return fake

    yield make
    for fake in fakes:
        fake.stop()
    assert not [t for t in threading.enumerate() if t.name == "fake-asterisk"]


@pytest.fixture
def qbench(tmp_path: Path) -> Iterator[QBench]:
    b = QBench(tmp_path)
    yield b
    b.close()


@pytest.fixture
def make_q(qbench: QBench) -> Iterator[Callable[..., FakeAsterisk]]:
    fakes: list[FakeAsterisk] = []

    def make(personality: str, **kwargs: Any) -> FakeAsterisk:
        kwargs.setdefault("interval", INTERVAL)
        kwargs.setdefault("init_timeout", 1.0)
        chosen = PERSONALITY.get(personality)  # an unknown one: make_fake_asterisk says so
        if chosen is not None and chosen.fork is not None:
            kwargs.setdefault("quectel_interval", INTERVAL)
        if chosen is not None and chosen.chan_dongle:
            kwargs.setdefault("dongle_conf", str(qbench.conf))
            if not qbench.conf.exists():
                qbench.write_conf()
        fake = make_fake_asterisk(
            personality, lock_dir=str(qbench.locks), quectel_conf=str(qbench.qconf), **kwargs
        )
        fake.start()
        fakes.append(fake)
        return fake

    yield make
    for fake in fakes:
        fake.stop()
