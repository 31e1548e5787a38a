"""execsnoop: trace every exec() with its arguments (libbpf-tools' execsnoop, in Python)."""
