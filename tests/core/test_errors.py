"""One exception tree: everything dongled raises on purpose is a DongledError carrying data."""

from __future__ import annotations

import inspect

import pytest

from dongled.core import errors
from dongled.core.errors import DongledError
from dongled.modem import usbreset
from tests.support import devguard


def test_every_error_is_under_the_base() -> None:
    classes = [
        c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__
    ]
    assert len(classes) >= 12
    assert all(issubclass(c, DongledError) for c in classes)


@pytest.mark.parametrize("cls", [errors.ProbeTimeoutError, errors.AmiTimeoutError])
def test_timeouts_are_timeout_errors_too(cls: type[Exception]) -> None:
    """`except TimeoutError` around an `asyncio.timeout` block catches ours as well."""
    assert issubclass(cls, TimeoutError) and issubclass(cls, DongledError)


def test_errors_carry_their_data() -> None:
    long = errors.TooLongAnswer("ATI", 65)
    assert (long.command, long.lines) == ("ATI", 65) and "ATI" in str(long)
    assert isinstance(long, errors.AtError)
    rec = errors.RecoveryError("USB reset failed", step="usb_reset", target="/dev/bus/usb/001/002")
    assert (rec.step, rec.target, str(rec)) == (
        "usb_reset",
        "/dev/bus/usb/001/002",
        "USB reset failed",
    )
    assert errors.RecoveryError("bare").step == ""  # old call sites pass only the message


def test_usbreset_names_the_step_and_target() -> None:
    # A node outside the testbed on purpose: the device guard refuses it (never a real reset).
    with devguard.expecting_escape(), pytest.raises(errors.RecoveryError) as info:
        usbreset.usb_reset(99, 123)
    assert info.value.step == "usb_reset" and info.value.target == "/dev/bus/usb/099/123"
