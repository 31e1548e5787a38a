"""profile: sample stacks on a CPU clock, per CPU (libbpf-tools' profile, in Python)."""
