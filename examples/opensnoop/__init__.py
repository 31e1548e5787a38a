"""opensnoop: trace open()/openat() with flags and errors (libbpf-tools' opensnoop, in Python)."""
