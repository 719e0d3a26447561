"""What differs between the Asterisk channel drivers dongled can keep bound to their sticks.

chan_dongle (dongle.conf, `Dongle*` AMI actions) is what the daemon drives today. The two
chan_quectel forks in use differ from it and from each other (docs/chan_quectel.md):

- `quectel`: the LTE modules' USB layouts, the identity commands a probe may send to them,
  the forks' keys, control verbs and parked values for quectel.conf;
- `quectel_cli`: the parser of `quectel show devices`, the only listing the RoEdAl fork has;
- `alsa`: which ALSA card belongs to a module with USB audio, and the name to give `alsadev=`.

Everything here is pure (no I/O): the daemon's driver seam wires it in.
"""
