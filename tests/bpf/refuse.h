/* SPDX-License-Identifier: GPL-2.0 */
/* REFUSE_<FEATURE> (tests/features.py refusal_cflags) simulates a kernel that refuses the
 * programs of that type: VERIFIER_REJECTS(map) dereferences a value of `map` (a map with __u64
 * values) without its NULL check, which the verifier rejects (the key is random, so it cannot
 * prove the lookup succeeds). */
#ifndef PYLIBBPF_TESTS_REFUSE_H
#define PYLIBBPF_TESTS_REFUSE_H

#define VERIFIER_REJECTS(map)							\
	do {								\
		__u32 refused_key = bpf_get_prandom_u32();			\
		__u64 *refused = bpf_map_lookup_elem(&(map), &refused_key);	\
		if (*(volatile __u64 *)refused == 0x5eed)			\
			return 0;						\
	} while (0)

#endif
