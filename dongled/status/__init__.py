"""What dongled says: the status document, each line's status, the status file, the monitoring
check.
"""
