/*
 * figures.h - the "name: value unit" lines every aioloop benchmark
 * prints, read back into a table that can be looked up by name.
 *
 * A line "name: 12.5 ns/op" is a figure; "name: skipped (why)" records
 * that the figure does not exist here and why (usually the package to
 * install); lines starting with '#' and anything else are ignored.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOB_FIGURES_H
#define AIOB_FIGURES_H

#include <stdbool.h>
#include <stddef.h>

typedef struct AiobFigure {
    char *name;
    double value;       /* meaningless when skip is set */
    char *unit;         /* "ns/op", "us/roundtrip", "IOPS", ... */
    char *skip;         /* why it was skipped, or NULL */
} AiobFigure;

typedef struct AiobFigures {
    AiobFigure *v;
    size_t n, cap;
} AiobFigures;

/* aiob_figures_parse - add every figure line of @text to @f (a later
 * figure of the same name replaces an earlier one). */
void aiob_figures_parse(AiobFigures *f, const char *text);

/* aiob_figures_set - add or replace figure @name. */
void aiob_figures_set(AiobFigures *f, const char *name, double value,
                      const char *unit);

/* aiob_figures_skip - record that figure @name is skipped, and why. */
void aiob_figures_skip(AiobFigures *f, const char *name, const char *why);

/* aiob_figures_get - figure @name, or NULL. A skipped figure is
 * returned too (check ->skip). */
const AiobFigure *aiob_figures_get(const AiobFigures *f, const char *name);

/* aiob_figures_free - release @f and everything in it. */
void aiob_figures_free(AiobFigures *f);

#endif /* AIOB_FIGURES_H */
