"""dongled: keeps chan_dongle devices bound to the USB GSM stick whose IMEI they name."""

__version__ = "0.1.0"
