"""What differs between the Asterisk channel drivers dongled keeps bound to their sticks:
chan_dongle (dongle.conf, `Dongle*` AMI actions) and the two chan_quectel forks (quectel.conf;
IM speaks `Quectel*` AMI actions, RE only CLI lines over `Command`). docs/chan_quectel.md says
how they differ.

- `base`: the `Driver` record every driver fills in;
- `chan_dongle`, `chan_quectel`: the drivers themselves;
- `quectel`: the forks' facts, keys, control verbs and parked values for quectel.conf;
- `quectel_cli`: the parser of `quectel show devices`, the only listing RE has;
- `known`: the drivers a setting may name.

Everything here is pure (no I/O).
"""
