"""A reconcile pass: plan, release wait, write, tell Asterisk, verify; and what asks for a pass
(file and binding watches, the coalescer).
"""
