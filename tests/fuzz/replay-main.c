/*
 * replay-main.c - runs files through the fuzz target without libFuzzer,
 * so that any compiler (gcc included) and make check replay the seed
 * corpus as a regression test.
 *
 *   fuzz-aio-replay PATH...   each PATH a file or a directory of inputs
 *
 * Prints one "# name" line per input before running it (a violation
 * aborts the program right after the name of the input that caused it),
 * then one TAP line for the whole replay. Exits 1 if no input was found.
 *
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int replayed;

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (!f) {
        perror(path);
        return -1;
    }
    do {
        if (len == cap) {
            unsigned char *nb;

            cap = cap ? cap * 2 : 4096;
            nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return -1;
            }
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    fclose(f);
    printf("# %s (%zu bytes)\n", path, len);
    fflush(stdout);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    replayed++;
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays the regular files of @dir in name order. */
static int replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t count = 0, i;
    int ret = 0;

    if (!d) {
        perror(dir);
        return -1;
    }
    while ((e = readdir(d))) {
        char **nn;

        if (e->d_name[0] == '.') {
            continue;
        }
        nn = realloc(names, (count + 1) * sizeof(*names));
        if (!nn) {
            ret = -1;
            break;
        }
        names = nn;
        names[count] = malloc(strlen(dir) + strlen(e->d_name) + 2);
        if (!names[count]) {
            ret = -1;
            break;
        }
        sprintf(names[count], "%s/%s", dir, e->d_name);
        count++;
    }
    closedir(d);
    qsort(names, count, sizeof(*names), name_cmp);
    for (i = 0; i < count; i++) {
        struct stat st;

        if (ret == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
            ret = replay_file(names[i]);
        }
        free(names[i]);
    }
    free(names);
    return ret;
}

int main(int argc, char **argv)
{
    int i;

    for (i = 1; i < argc; i++) {
        struct stat st;

        if (stat(argv[i], &st) < 0) {
            perror(argv[i]);
            return 1;
        }
        if ((S_ISDIR(st.st_mode) ? replay_dir(argv[i])
                                 : replay_file(argv[i])) < 0) {
            return 1;
        }
    }
    if (replayed == 0) {
        printf("not ok 1 - no fuzz input found\n1..1\n");
        return 1;
    }
    printf("ok 1 - replayed %d fuzz inputs through the model\n1..1\n",
           replayed);
    return 0;
}
