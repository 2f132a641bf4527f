/*
 * table.c - formatting and summing up comparison tables (table.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"

#define MAX_BEHIND_LISTED 3

void aiob_table_init(AiobTable *t, const char *title)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->title, sizeof(t->title), "%s", title);
}

/* The value with 3 significant digits (at least one decimal below 10). */
static void sig3(double v, char *buf, size_t len)
{
    if (v >= 100) {
        snprintf(buf, len, "%.0f", v);
    } else if (v >= 10) {
        snprintf(buf, len, "%.1f", v);
    } else if (v >= 1) {
        snprintf(buf, len, "%.2f", v);
    } else {
        snprintf(buf, len, "%.3f", v);
    }
}

const char *aiob_format_value(double v, const char *unit, char *buf,
                              size_t len)
{
    char num[32];
    size_t base = strcspn(unit, "/");

    if (strcmp(unit, "IOPS") == 0) {
        if (v >= 1e6) {
            sig3(v / 1e6, num, sizeof(num));
            snprintf(buf, len, "%sM IOPS", num);
        } else if (v >= 1e3) {
            sig3(v / 1e3, num, sizeof(num));
            snprintf(buf, len, "%sk IOPS", num);
        } else {
            snprintf(buf, len, "%.0f IOPS", v);
        }
        return buf;
    }
    /* Times: show ns from 1 us up as us, and us from 1 ms up as ms. */
    if (base == 2 && strncmp(unit, "ns", 2) == 0 && v >= 1000) {
        sig3(v / 1000, num, sizeof(num));
        snprintf(buf, len, "%s us", num);
    } else if (base == 2 && strncmp(unit, "us", 2) == 0 && v >= 1000) {
        sig3(v / 1000, num, sizeof(num));
        snprintf(buf, len, "%s ms", num);
    } else if (base == 2 && strncmp(unit, "us", 2) == 0 && v < 1) {
        sig3(v * 1000, num, sizeof(num));
        snprintf(buf, len, "%s ns", num);
    } else {
        sig3(v, num, sizeof(num));
        snprintf(buf, len, "%s %.*s", num, (int)base, unit);
    }
    return buf;
}

void aiob_table_add(AiobTable *t, const char *figure, double ours,
                    const char *peer, double theirs, const char *unit,
                    AiobSense sense, const char *why)
{
    aiob_table_add_ex(t, figure, ours, peer, theirs, unit, sense, why, NULL);
}

void aiob_table_add_ex(AiobTable *t, const char *figure, double ours,
                       const char *peer, double theirs, const char *unit,
                       AiobSense sense, const char *why,
                       const AiobRowExtra *x)
{
    AiobRow *r;

    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        AiobRow *rows = realloc(t->rows, cap * sizeof(*rows));

        if (!rows) {
            abort();
        }
        t->rows = rows;
        t->cap = cap;
    }
    r = &t->rows[t->n++];
    memset(r, 0, sizeof(*r));
    snprintf(r->figure, sizeof(r->figure), "%s", figure);
    snprintf(r->peer, sizeof(r->peer), "%s", peer);
    if (ours >= 0) {
        aiob_format_value(ours, unit, r->ours, sizeof(r->ours));
    } else {
        snprintf(r->ours, sizeof(r->ours), "-");
    }
    if (theirs >= 0) {
        aiob_format_value(theirs, unit, r->theirs, sizeof(r->theirs));
    } else {
        snprintf(r->theirs, sizeof(r->theirs), "%s", why ? why : "-");
    }
    if (ours > 0 && theirs > 0) {
        r->ratio = sense == AIOB_LOWER_IS_BETTER ? theirs / ours
                                                 : ours / theirs;
        if (x && x->ratio_lo > 0 && x->ratio_hi > 0) {
            r->ratio_lo = x->ratio_lo;
            r->ratio_hi = x->ratio_hi;
        }
    }
    r->reference = x && x->reference;
}

void aiob_table_footnote(AiobTable *t, const char *fmt, ...)
{
    va_list ap;
    char *line;

    if (t->nfootnotes == AIOB_TABLE_MAX_FOOTNOTES) {
        return;
    }
    va_start(ap, fmt);
    if (vasprintf(&line, fmt, ap) < 0) {
        abort();
    }
    va_end(ap);
    t->footnotes[t->nfootnotes++] = line;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static int cmp_row_ratio(const void *a, const void *b)
{
    const AiobRow *x = *(const AiobRow *const *)a;
    const AiobRow *y = *(const AiobRow *const *)b;

    return cmp_double(&x->ratio, &y->ratio);
}

void aiob_table_summary(const AiobTable *t, char *buf, size_t len)
{
    double *ratios = malloc((t->n + 1) * sizeof(*ratios));
    const AiobRow **behind = malloc((t->n + 1) * sizeof(*behind));
    size_t n = 0, nbehind = 0, used;

    if (!ratios || !behind) {
        abort();
    }
    for (size_t i = 0; i < t->n; i++) {
        if (t->rows[i].ratio > 0 && !t->rows[i].reference) {
            ratios[n++] = t->rows[i].ratio;
            if (t->rows[i].ratio < 1.0) {
                behind[nbehind++] = &t->rows[i];
            }
        }
    }
    if (n == 0) {
        snprintf(buf, len, "no peer measured: nothing to compare");
        goto out;
    }
    qsort(ratios, n, sizeof(ratios[0]), cmp_double);
    qsort(behind, nbehind, sizeof(behind[0]), cmp_row_ratio);
    used = (size_t)snprintf(buf, len, "aioloop ahead or level in %zu of %zu "
                            "comparisons (median ratio %.2fx)", n - nbehind,
                            n, n % 2 ? ratios[n / 2]
                                     : (ratios[n / 2 - 1] + ratios[n / 2]) / 2);
    for (size_t i = 0; i < nbehind && i < MAX_BEHIND_LISTED && used < len;
         i++) {
        used += (size_t)snprintf(buf + used, len - used, "%s%s vs %s %.2fx",
                                 i ? "; " : "; behind: ", behind[i]->figure,
                                 behind[i]->peer, behind[i]->ratio);
    }
    if (nbehind > MAX_BEHIND_LISTED && used < len) {
        snprintf(buf + used, len - used, " (and %zu more)",
                 nbehind - MAX_BEHIND_LISTED);
    }
out:
    free(ratios);
    free(behind);
}

void aiob_table_print(FILE *f, const AiobTable *t)
{
    char summary[512];
    int wf = 6, wo = 7, wp = 4, wt = 4;
    bool spread = false, refs = false;

    for (size_t i = 0; i < t->n; i++) {
        const AiobRow *r = &t->rows[i];
        int l;

        if ((l = (int)strlen(r->figure)) > wf) {
            wf = l;
        }
        if ((l = (int)strlen(r->ours)) > wo) {
            wo = l;
        }
        if ((l = (int)strlen(r->peer)) > wp) {
            wp = l;
        }
        if (r->ratio > 0 && (l = (int)strlen(r->theirs)) > wt) {
            wt = l;
        }
        spread |= r->ratio_lo > 0;
        refs |= r->reference && r->ratio > 0;
    }
    fprintf(f, "== %s ==\n", t->title);
    if (t->note[0]) {
        fprintf(f, "   %s\n", t->note);
    }
    fprintf(f, "%-*s  %*s  %-*s  %*s  %s\n", wf, "figure", wo, "aioloop",
            wp, "peer", wt, "peer's", spread ? "ratio  spread" : "ratio");
    for (size_t i = 0; i < t->n; i++) {
        const AiobRow *r = &t->rows[i];

        if (r->ratio > 0) {
            char range[32] = "";

            if (r->ratio_lo > 0) {
                snprintf(range, sizeof(range), "  %.2f-%.2f", r->ratio_lo,
                         r->ratio_hi);
            } else if (spread) {
                snprintf(range, sizeof(range), "  %9s", "-");
            }
            fprintf(f, "%-*s  %*s  %-*s  %*s  %.2fx%s%s\n", wf, r->figure,
                    wo, r->ours, wp, r->peer, wt, r->theirs, r->ratio, range,
                    r->reference ? "  (ref)" : "");
        } else {
            fprintf(f, "%-*s  %*s  %-*s  %s\n", wf, r->figure, wo, r->ours,
                    wp, r->peer, r->theirs);
        }
    }
    for (size_t i = 0; i < t->nfootnotes; i++) {
        fprintf(f, "   %s\n", t->footnotes[i]);
    }
    aiob_table_summary(t, summary, sizeof(summary));
    fprintf(f, "=> %s%s\n\n", summary,
            refs ? " (rows marked (ref) not counted)" : "");
}

void aiob_table_free(AiobTable *t)
{
    free(t->rows);
    t->rows = NULL;
    t->n = t->cap = 0;
    for (size_t i = 0; i < t->nfootnotes; i++) {
        free(t->footnotes[i]);
    }
    t->nfootnotes = 0;
}
