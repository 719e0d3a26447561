"""Asterisk as dongled sees it: the device view, the AMI transport and its supervisor, device
polls.
"""
