"""What differs between the Asterisk channel drivers dongled keeps bound to their sticks:
chan_dongle (dongle.conf, `Dongle*` AMI actions) and the two chan_quectel forks (quectel.conf;
IM speaks `Quectel*` AMI actions, RE only CLI lines over `Command`). docs/chan_quectel.md says
how they differ; docs/design.md ("Adding a driver") what a new one needs.

- `base`: the `Driver` record every driver fills in;
- `chan_dongle`, `chan_quectel`: the drivers themselves, one `Driver` value each (RE's
  `[general] interval` rule with it);
- `quectel_cli`: the parser of RE's CLI output (`quectel show devices`, the only listing it
  has; its device settings; whether a stop or start was taken);
- `known`: the drivers a setting may name.

Everything here is pure (no I/O).
"""
