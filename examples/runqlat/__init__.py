"""runqlat: run-queue latency as a log2 histogram (libbpf-tools' runqlat, in Python)."""
