/* A program that dies while its BPF_PROG_LOAD_EX is being translated: a thread makes the call,
 * the main thread exits (killing it) before the supervisor answers.
 * usage: die_mid_call MAP_O DELAY_MS */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bpf.h"
#include "check.h"

static void *elf;
static uint32_t size;
static int counter, config;

static void *loader(void *arg)
{
    (void)arg;
    struct bpf_map_fd_entry maps[] = {{"map_fd", (uint32_t)counter}, {"config", (uint32_t)config}};
    int prog = bpf_prog_load_ex(elf, size, maps, 2);
    printf("load returned %d\n", prog);  /* never reached: the process is gone */
    return NULL;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    assert(argc == 3);
    FILE *f = fopen(argv[1], "rb");
    assert(f != NULL);
    fseek(f, 0, SEEK_END);
    size = (uint32_t)ftell(f);
    rewind(f);
    elf = malloc(size);
    assert(elf != NULL && fread(elf, 1, size, f) == size);
    fclose(f);
    counter = bpf_create_map(BPF_MAP_TYPE_ARRAY, 4, 8, 1);
    config = bpf_create_map(BPF_MAP_TYPE_ARRAY, 4, 4, 1);
    assert(counter > 0 && config > 0);
    pthread_t thread;
    assert(pthread_create(&thread, NULL, loader, NULL) == 0);
    usleep((useconds_t)atoi(argv[2]) * 1000);
    printf("exiting mid-call\n");
    _exit(3);
}
