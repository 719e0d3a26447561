"""The modems themselves: USB layouts, UUCP locks and fences, the AT conversation that
identifies a stick, USB resets.
"""
