"""The lab's screens: browser, run, compare, zoom, help."""
