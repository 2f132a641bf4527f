/*
 * figures.c - parsing and looking up "name: value unit" lines. A linear
 * table: a comparison holds about a hundred figures, looked up a few
 * hundred times.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdlib.h>
#include <string.h>

#include "figures.h"

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);

    if (!d) {
        abort();
    }
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static AiobFigure *slot(AiobFigures *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->v[i].name, name) == 0) {
            free(f->v[i].unit);
            free(f->v[i].skip);
            f->v[i].unit = f->v[i].skip = NULL;
            return &f->v[i];
        }
    }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 64;
        AiobFigure *v = realloc(f->v, cap * sizeof(*v));

        if (!v) {
            abort();
        }
        f->v = v;
        f->cap = cap;
    }
    memset(&f->v[f->n], 0, sizeof(f->v[0]));
    f->v[f->n].name = dup_n(name, strlen(name));
    return &f->v[f->n++];
}

void aiob_figures_set(AiobFigures *f, const char *name, double value,
                      const char *unit)
{
    AiobFigure *fig = slot(f, name);

    fig->value = value;
    fig->unit = dup_n(unit, strlen(unit));
}

void aiob_figures_skip(AiobFigures *f, const char *name, const char *why)
{
    AiobFigure *fig = slot(f, name);

    fig->skip = dup_n(why, strlen(why));
}

/* One line [s, e): "name: value unit" or "name: skipped (why)". */
static void parse_line(AiobFigures *f, const char *s, const char *e)
{
    const char *colon, *p;
    char *name, *end;
    double v;

    if (s == e || *s == '#') {
        return;
    }
    colon = memchr(s, ':', (size_t)(e - s));
    if (!colon || colon == s || memchr(s, ' ', (size_t)(colon - s))) {
        return;
    }
    name = dup_n(s, (size_t)(colon - s));
    p = colon + 1;
    while (p < e && *p == ' ') {
        p++;
    }
    if ((size_t)(e - p) >= 7 && strncmp(p, "skipped", 7) == 0) {
        const char *why = p + 7;
        size_t n;

        while (why < e && (*why == ' ' || *why == '(')) {
            why++;
        }
        n = (size_t)(e - why);
        if (n > 0 && why[n - 1] == ')') {
            n--;
        }
        {
            char *w = dup_n(why, n);

            aiob_figures_skip(f, name, w);
            free(w);
        }
    } else {
        char *line = dup_n(p, (size_t)(e - p));

        v = strtod(line, &end);
        if (end != line) {
            while (*end == ' ') {
                end++;
            }
            aiob_figures_set(f, name, v, end);
        }
        free(line);
    }
    free(name);
}

void aiob_figures_parse(AiobFigures *f, const char *text)
{
    while (text && *text) {
        const char *nl = strchr(text, '\n');
        const char *e = nl ? nl : text + strlen(text);

        parse_line(f, text, e);
        text = nl ? nl + 1 : e;
    }
}

const AiobFigure *aiob_figures_get(const AiobFigures *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->v[i].name, name) == 0) {
            return &f->v[i];
        }
    }
    return NULL;
}

void aiob_figures_free(AiobFigures *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->v[i].name);
        free(f->v[i].unit);
        free(f->v[i].skip);
    }
    free(f->v);
    memset(f, 0, sizeof(*f));
}
