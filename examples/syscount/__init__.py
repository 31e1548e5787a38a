"""syscount: system calls counted by name or by process (libbpf-tools' syscount, in Python)."""
