"""What any step may report: journal events, sd_notify, Prometheus metrics. Imports nothing of
dongled.
"""
