"""Helpers of the test suite: building BPF programs, probing kernel features, setting up
attachments, producers and tracers.  Nothing here is a test; ``vmtest`` and ``fuzz`` import
``bpfbuild`` too."""
