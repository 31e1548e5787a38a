"""choose_variant: probe the kernel, then load the tp_btf or the raw_tp variant of a handler."""
