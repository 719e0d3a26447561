"""The daemon's runtime basics: errors, backoff, rate limits, inotify, task supervision."""
