"""The channel driver's config file: its model (sections, includes, values), parked values,
atomic replacement.
"""
