/* Reference for the ELF tests: what libbpf reports after bpf_object__open_file (no load).
 *   libbpf_dump OBJ        -> JSON lines: one "object", one per program, one per map
 *   libbpf_dump --types    -> for each section name on stdin: libbpf_prog_type_by_name()
 *   libbpf_dump --version  -> "MAJOR.MINOR" of the libbpf it runs with
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <bpf/libbpf.h>

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

static void json_str(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_map *map;
	char line[512];

	libbpf_set_print(quiet);
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("%u.%u\n", libbpf_major_version(), libbpf_minor_version());
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "--types") == 0) {
		while (fgets(line, sizeof(line), stdin)) {
			enum bpf_prog_type type = 0;
			enum bpf_attach_type attach = 0;
			int err;

			line[strcspn(line, "\n")] = 0;
			err = libbpf_prog_type_by_name(line, &type, &attach);
			printf("{\"section\": ");
			json_str(line);
			printf(", \"err\": %d, \"type\": %d, \"attach\": %d}\n", err, type, attach);
		}
		return 0;
	}
	if (argc != 2)
		return 2;
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj) {
		printf("{\"kind\": \"error\", \"errno\": %d}\n", errno);
		return 0;
	}
	printf("{\"kind\": \"object\", \"name\": ");
	json_str(bpf_object__name(obj));
	printf(", \"kern_version\": %u}\n", bpf_object__kversion(obj));
	bpf_object__for_each_program(prog, obj) {
		printf("{\"kind\": \"program\", \"name\": ");
		json_str(bpf_program__name(prog));
		printf(", \"section\": ");
		json_str(bpf_program__section_name(prog));
		printf(", \"insn_cnt\": %zu, \"type\": %d, \"attach\": %d}\n",
		       bpf_program__insn_cnt(prog), bpf_program__type(prog),
		       bpf_program__expected_attach_type(prog));
	}
	bpf_object__for_each_map(map, obj) {
		const struct bpf_map *inner = bpf_map__inner_map((struct bpf_map *)map);

		printf("{\"kind\": \"map\", \"name\": ");
		json_str(bpf_map__name(map));
		printf(", \"type\": %d, \"key_size\": %u, \"value_size\": %u, \"max_entries\": %u,"
		       " \"map_flags\": %u, \"numa_node\": %u, \"inner\": ",
		       bpf_map__type(map), bpf_map__key_size(map), bpf_map__value_size(map),
		       bpf_map__max_entries(map), bpf_map__map_flags(map), bpf_map__numa_node(map));
		if (inner)
			json_str(bpf_map__name(inner));
		else
			printf("null");
		printf("}\n");
	}
	bpf_object__close(obj);
	return 0;
}
